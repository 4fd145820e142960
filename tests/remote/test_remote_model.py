"""RemoteModel against a real v2 server on loopback serving the demo ONNX model through ONNX Runtime."""

from __future__ import annotations

import pickle
import socket
import time

import numpy as np
import onnxruntime as ort
import pytest

from onnxplain.blackbox.geex import GEEX
from onnxplain.errors import (
    InvalidInputError,
    ModelLoadError,
    NonFiniteOutputError,
    QueryBudgetExceeded,
    RemoteModelError,
)
from onnxplain.models import RemoteModel
from onnxplain.models.onnx import OnnxModel
from onnxplain.models.remote import RemoteTimeoutError, parse_v2_url
from onnxplain.serving import V2Server
from tests.remote.remote_helpers import FaultyServer, tiny_model

# these tests leave ends_in_softmax to the first answer (the demo model: logits), which warns once per model
pytestmark = pytest.mark.filterwarnings("ignore:.*answers with (logits|probabilities).*:UserWarning")


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).random((50, 1, 28, 28), dtype=np.float32)


@pytest.fixture(scope="module")
def local(demo_path):
    return OnnxModel(demo_path, device="cpu", output="logits", batch_size=16, intra_op_threads=1)


def remote(server: V2Server, **kw) -> RemoteModel:
    kw.setdefault("output", "logits")
    kw.setdefault("backoff", 0.01)
    return RemoteModel.from_url(server.model_url, **kw)


# -- metadata ------------------------------------------------------------------------------------
def test_metadata_gives_names_shapes_batch_limit_and_binary(fresh: FaultyServer) -> None:
    with remote(fresh) as model:
        assert model.input_name == "pixels"
        assert model.input_shape == (1, 28, 28)
        assert model.num_classes == 10
        assert model.max_batch_size == 16 and model.batch_size == 16  # Triton-style /config
        assert model.binary is True  # the server lists "binary_tensor_data"
        assert model.best_batch_size() == 16 * model.concurrency


def test_json_only_server_is_detected(json_server: V2Server) -> None:
    with remote(json_server) as model:
        assert model.binary is False
        assert model.max_batch_size is None and model.batch_size == 256


def test_parse_v2_url() -> None:
    assert parse_v2_url("http://h:8000/v2/models/m") == ("http://h:8000", "m", None)
    assert parse_v2_url("https://h/prefix/v2/models/m/versions/3/") == ("https://h/prefix", "m", "3")
    for bad in ("ftp://h/v2/models/m", "http://h:8000/models/m", "http://h:8000/v2/models/"):
        with pytest.raises(InvalidInputError, match="v2"):
            parse_v2_url(bad)


def test_version_in_url_is_used(fresh: FaultyServer) -> None:
    with RemoteModel.from_url(fresh.model_url + "/versions/1", output="logits") as model:
        assert model.infer_url.endswith("/v2/models/mnist/versions/1/infer")
        assert model(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    with pytest.raises(RemoteModelError, match=r"HTTP 404.*unknown version"):
        RemoteModel.from_url(fresh.model_url + "/versions/7")


def test_unknown_model_is_a_clear_error_without_retry(fresh: FaultyServer) -> None:
    with pytest.raises(RemoteModelError, match=r"/v2/models/nope .*HTTP 404"):
        RemoteModel(fresh.url, "nope", retries=3, backoff=0.5)


def test_unreachable_server_names_the_url() -> None:
    with socket.socket() as s:  # a free port, left closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(
        RemoteModelError, match=rf"127\.0\.0\.1:{port}/v2/models/m failed after 3 attempts: connection"
    ):
        RemoteModel(f"http://127.0.0.1:{port}", "m", retries=2, backoff=0.01)
    assert time.perf_counter() - t0 < 5


def test_constructor_validation(fresh: FaultyServer) -> None:
    for kw, match in [
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"concurrency": 0}, "concurrency"),
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"binary": "yes"}, "binary"),
        ({"layout": "HWC"}, "layout"),
        ({"batch_size": 0}, "batch_size"),
        ({"input_shape": (3, 28, 28)}, "does not fit"),
    ]:
        with pytest.raises(InvalidInputError, match=match):
            remote(fresh, **kw)
    with pytest.raises(ModelLoadError, match="no input named 'x'"):
        remote(fresh, input_name="x")


# -- parity with the local OnnxModel -------------------------------------------------------------
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("head", ["logits", "probs"])
def test_outputs_equal_onnx_model(fresh, batch, demo_path, binary, head) -> None:
    local = OnnxModel(demo_path, device="cpu", output=head, batch_size=16, intra_op_threads=1)
    with remote(fresh, output=head, binary=binary, concurrency=3) as model:
        out = model(batch)
        np.testing.assert_array_equal(out, local(batch))
        assert model.n_queries == 50 and model.n_calls == 4  # ceil(50 / 16) requests
        assert fresh.n_samples == 50 and fresh.n_requests == 4
        assert model.model_seconds > 0


def test_json_server_parity(json_server, batch, local) -> None:
    with remote(json_server, batch_size=7) as model:
        np.testing.assert_array_equal(model(batch), local(batch))
        assert model.n_calls == 8


def test_requests_really_overlap(fresh, local) -> None:
    x = np.random.default_rng(1).random((32, 1, 28, 28), dtype=np.float32)
    fresh.faults.extend(["barrier", "barrier"])  # each waits until the other has arrived
    with remote(fresh, concurrency=2, timeout=15) as model:
        np.testing.assert_array_equal(model(x), local(x))
        assert model.n_queries == 32 and fresh.attempts == 2


def test_geex_through_endpoint_equals_geex_on_file(fresh, demo_path) -> None:
    from onnxplain.demo import load_demo_digits

    x = load_demo_digits()[0][:2]
    local = OnnxModel(demo_path, device="cpu", output="probs", batch_size=16, intra_op_threads=1)
    with remote(fresh, output="probs", concurrency=2) as model:
        geex = GEEX(n_queries=256, seed=11)
        a = geex.explain(model, x)
        b = geex.explain(local, x)
        np.testing.assert_array_equal(a.attributions, b.attributions)
        np.testing.assert_array_equal(a.target, b.target)
        assert a.n_queries == b.n_queries == model.n_queries


def test_pickled_model_reconnects(fresh, batch, local) -> None:
    with remote(fresh) as model:
        model(batch[:3])
        clone = pickle.loads(pickle.dumps(model))
    with clone:
        np.testing.assert_array_equal(clone(batch[:20]), local(batch[:20]))
        assert clone.n_queries == 3 + 20


def test_budget_is_checked_before_sending(fresh, batch) -> None:
    with remote(fresh, max_queries=20) as model:
        model(batch[:16])
        with pytest.raises(QueryBudgetExceeded, match="4 of the budget of 20"):
            model(batch[:16])
        assert model.n_queries == 16 and fresh.attempts == 1


def test_tiny_models_fixed_batch_and_nhwc(tmp_path) -> None:
    x = np.random.default_rng(2).random((7, 1, 6, 6), dtype=np.float32)
    fixed = tiny_model(tmp_path / "fixed.onnx", batch=4)
    with (
        V2Server(fixed, name="fixed", threads=1) as srv,
        RemoteModel.from_url(srv.model_url, output="raw") as model,
    ):
        assert model.batch_size == 4  # static leading axis
        ref = OnnxModel(fixed, device="cpu", output="raw")
        np.testing.assert_array_equal(model(x), ref(x))
        assert model.n_queries == 7 and srv.n_samples == 8  # last chunk padded, not counted
    xh = np.random.default_rng(3).random((5, 3, 6, 6), dtype=np.float32)
    nhwc = tiny_model(tmp_path / "nhwc.onnx", nhwc=True)
    with V2Server(nhwc, name="nhwc", threads=1) as srv:
        with RemoteModel.from_url(srv.model_url, output="raw", layout="NHWC") as model:
            assert model.input_shape == (3, 6, 6)
            ref = OnnxModel(nhwc, device="cpu", output="raw", layout="NHWC", batch_size=8)
            np.testing.assert_array_equal(model(xh), ref(xh))


def test_several_outputs_need_a_choice(tmp_path) -> None:
    path = tiny_model(tmp_path / "two.onnx", outputs=2)
    x = np.random.default_rng(4).random((3, 1, 6, 6), dtype=np.float32)
    with V2Server(path, name="two", threads=1) as srv:
        with pytest.raises(ModelLoadError, match=r"2 outputs \(scores, probs\); choose one with output_name"):
            RemoteModel.from_url(srv.model_url)
        with RemoteModel.from_url(srv.model_url, output_name="probs", output="raw") as model:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            np.testing.assert_array_equal(model(x), session.run(["probs"], {"image": x})[0])


# -- failures: retried, timed out, or reported, never counted twice ------------------------------
def test_503_and_429_are_retried_and_counted_once(fresh, batch, local) -> None:
    fresh.faults.extend(["503", "429", "503"])
    with remote(fresh, retries=3, concurrency=1) as model:
        t0 = time.perf_counter()
        np.testing.assert_array_equal(model(batch[:10]), local(batch[:10]))
        elapsed = time.perf_counter() - t0
        assert model.n_queries == 10 and model.n_calls == 1
        assert fresh.attempts == 4 and fresh.n_samples == 10
        assert elapsed >= 0.01 + 0.02 + 0.04  # exponential backoff between the attempts


def test_persistent_503_gives_up_with_url_and_status(fresh, batch) -> None:
    fresh.faults.extend(["503"] * 5)
    with remote(fresh, retries=2) as model:
        with pytest.raises(
            RemoteModelError,
            match=r"POST http://127\.0\.0\.1:\d+/v2/models/mnist/infer failed after 3 attempts: HTTP 503 \(server overloaded\)",
        ) as info:
            model(batch[:10])
        assert info.value.status == 503
        assert model.n_queries == 0 and model.n_calls == 0 and fresh.attempts == 3


def test_400_is_not_retried(fresh, batch) -> None:
    fresh.faults.append("400")
    with remote(fresh, retries=3) as model:
        with pytest.raises(
            RemoteModelError, match=r"/v2/models/mnist/infer answered HTTP 400: tensor 'pixels' is malformed"
        ) as info:
            model(batch[:10])
        assert info.value.status == 400
        assert fresh.attempts == 1 and model.n_queries == 0
        model(batch[:10])  # the next call works and counts normally
        assert model.n_queries == 10


def test_slow_response_times_out_after_retries(fresh, batch) -> None:
    fresh.faults.extend(["slow", "slow"])
    with remote(fresh, timeout=0.2, retries=1) as model:
        with pytest.raises(
            RemoteTimeoutError, match=r"/infer failed after 2 attempts: no answer within 0\.2 s"
        ):
            model(batch[:4])
        assert isinstance(RemoteTimeoutError("x"), RemoteModelError)
        assert fresh.attempts == 2 and model.n_queries == 0


def test_one_slow_response_is_retried(fresh, batch, local) -> None:
    fresh.faults.append("slow")
    with remote(fresh, timeout=0.2, retries=1) as model:
        np.testing.assert_array_equal(model(batch[:4]), local(batch[:4]))
        assert fresh.attempts == 2 and model.n_queries == 4


def test_dropped_connection_is_retried(fresh, batch, local) -> None:
    fresh.faults.append("drop")
    with remote(fresh, retries=1) as model:
        np.testing.assert_array_equal(model(batch[:4]), local(batch[:4]))
        assert fresh.attempts == 2 and model.n_queries == 4


def test_malformed_json_is_a_clear_error_not_retried(fresh, batch) -> None:
    fresh.faults.append("badjson")
    with remote(fresh, retries=3, binary=False) as model:
        with pytest.raises(
            RemoteModelError,
            match=r"POST http://127\.0\.0\.1:\d+/v2/models/mnist/infer returned malformed JSON",
        ):
            model(batch[:4])
        assert fresh.attempts == 1 and model.n_queries == 0


def test_wrong_element_count_and_nan_are_reported(fresh, batch) -> None:
    with remote(fresh, binary=False) as model:
        fresh.faults.append("short")
        with pytest.raises(RemoteModelError, match="has 30 values for 4 samples of 10 classes"):
            model(batch[:4])
        fresh.faults.append("nan")
        with pytest.raises(NonFiniteOutputError, match="non-finite scores for 1 samples"):
            model(batch[:4])
        assert model.n_queries == 0


def test_failed_chunk_counts_only_the_answered_ones(fresh, batch) -> None:
    # three chunks of 16 in flight two at a time; the first request answered gets a 400
    fresh.faults.append("400")
    with remote(fresh, concurrency=2, retries=3) as model:
        with pytest.raises(RemoteModelError, match="HTTP 400"):
            model(batch[:48])
        answered = fresh.n_samples
        assert model.n_queries == answered and model.n_calls == fresh.n_requests
        assert answered in (0, 16, 32)  # never the failed chunk, never twice
