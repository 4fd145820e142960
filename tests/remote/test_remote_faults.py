"""Remote faults: each a specific error, never a query counted twice; and a soak run of 10,000
queries through injected 503s and random delays that ends bit-identical to the local model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxplain.blackbox.geex import GEEX
from onnxplain.demo import load_demo_digits
from onnxplain.errors import RemoteModelError
from onnxplain.models import RemoteModel
from onnxplain.models.onnx import OnnxModel
from tests.remote.remote_helpers import FaultyServer

pytestmark = pytest.mark.filterwarnings("ignore:.*answers with (logits|probabilities).*:UserWarning")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(9).random((4, 1, 28, 28), dtype=np.float32)


def remote(server: FaultyServer, **kw) -> RemoteModel:
    kw.setdefault("output", "logits")
    kw.setdefault("backoff", 0.001)
    kw.setdefault("binary", False)  # the reply-rewriting faults edit JSON answers
    return RemoteModel.from_url(server.model_url, **kw)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("badjson", r"/infer returned malformed JSON \("),
        ("rows", r"/infer: output 'logits' has 3 rows for the 4 samples sent \(shape \[3, 10\]\)\."),
        ("shape", r"/infer: output 'logits' has shape \[4, 9\], expected \[4, 10\]\."),
        ("short", r"/infer: output 'logits' has 30 values for 4 samples of 10 classes\."),
        ("int", r"/infer: output 'logits' has datatype 'INT64', not a float type\."),
        ("400", r"/infer answered HTTP 400: tensor 'pixels' is malformed\."),
    ],
)
def test_bad_answers_are_specific_errors_not_retried(fresh, x, fault, message) -> None:
    fresh.faults.append(fault)
    with remote(fresh, retries=3) as model:
        with pytest.raises(RemoteModelError, match=r"POST http://127\.0\.0\.1:\d+/v2/models/mnist" + message) as info:
            model(x)
        assert info.value.status in (200, 400) and info.value.url == model.infer_url
        assert fresh.attempts == 1 and model.n_queries == 0 and model.n_calls == 0
        model(x)  # the model stays usable and counts normally afterwards
        assert model.n_queries == 4 and fresh.attempts == 2


def test_connection_reset_mid_request_is_retried_and_counted_once(fresh, demo_path, x) -> None:
    local = OnnxModel(demo_path, device="cpu", output="logits", batch_size=16, intra_op_threads=1)
    fresh.faults.append("reset")
    with remote(fresh, retries=2, binary=True) as model:
        np.testing.assert_array_equal(model(x), local(x))
        assert fresh.attempts == 2 and fresh.n_samples == 4 and model.n_queries == 4 and model.n_calls == 1
    fresh.reset()
    fresh.faults.extend(["reset", "reset"])
    with remote(fresh, retries=1, binary=True) as model:
        with pytest.raises(RemoteModelError, match=r"/infer failed after 2 attempts: connection failed \(") as info:
            model(x)
        assert info.value.status is None
        assert fresh.attempts == 2 and fresh.n_samples == 0 and model.n_queries == 0


@pytest.fixture(scope="module")
def soak_server(demo_path: Path):
    with FaultyServer(demo_path, name="mnist", max_batch_size=64, threads=1) as srv:
        yield srv


def test_soak_10000_queries_through_503s_and_delays(soak_server, demo_path) -> None:
    """5 % of requests answered 503, the others delayed by up to 5 ms (so concurrent requests
    finish out of order): the GEEX maps equal the local OnnxModel's bit for bit, every query is
    counted exactly once, and the budget of exactly the queries needed is enough."""
    explicands = load_demo_digits()[0][:4]
    geex = GEEX(n_queries=2500, seed=3)
    local = OnnxModel(demo_path, device="cpu", output="probs", batch_size=64, intra_op_threads=1)
    b = geex.explain(local, explicands)
    soak_server.reset()
    soak_server.chaos = (0.05, 0.005, np.random.default_rng(0))
    with remote(soak_server, output="probs", binary=True, concurrency=4, retries=6, max_queries=b.n_queries) as model:
        a = geex.explain(model, explicands)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    np.testing.assert_array_equal(a.target, b.target)
    assert a.n_queries == b.n_queries == model.n_queries >= 10_000
    assert soak_server.n_samples == model.n_queries  # answered once each, 503s never reached the model
    failed = soak_server.attempts - soak_server.n_requests
    assert failed > 0.02 * soak_server.attempts  # the 503s really happened (expected 5 %)
    assert model.n_calls == soak_server.n_requests
