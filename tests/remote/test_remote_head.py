"""ends_in_softmax=None decided from the first answer, against the project's v2 server serving the demo
CNN (logits) and the same CNN with a Softmax appended (probabilities)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from onnxplain.errors import InvalidInputError
from onnxplain.models import RemoteModel
from onnxplain.models.base import softmax
from onnxplain.models.onnx import OnnxModel
from onnxplain.models.remote import PROBABILITY_TOLERANCE, looks_like_probabilities
from onnxplain.serving import V2Server
from tests.remote.remote_helpers import softmax_model


@pytest.fixture(scope="module")
def softmax_path(demo_path: Path, tmp_path_factory) -> Path:
    return softmax_model(demo_path, tmp_path_factory.mktemp("softmax") / "demo_softmax.onnx")


@pytest.fixture(scope="module")
def prob_server(softmax_path: Path):
    with V2Server(softmax_path, name="probs", max_batch_size=16, threads=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(5).random((20, 1, 28, 28), dtype=np.float32)


def raw_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """The graph's own output, by ONNX Runtime directly (the oracle of the head's arithmetic)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_softmax_server_is_decided_probabilities(prob_server, softmax_path, x) -> None:
    raw = raw_outputs(softmax_path, x)
    with RemoteModel.from_url(prob_server.model_url, output="probs") as model:
        assert model.ends_in_softmax is None and model.describe()["ends_in_softmax_source"] is None
        with pytest.warns(UserWarning, match=r"/v2/models/probs answers with probabilities .*ends_in_softmax=True"):
            out = model(x)
        np.testing.assert_array_equal(out, raw)  # taken as they are, not softmaxed again
        assert model.ends_in_softmax is True
        info = model.describe()
        assert info["ends_in_softmax"] is True and info["ends_in_softmax_source"] == "first answer"
        assert info["url"] == prob_server.model_url and info["output_name"] == "probs"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # decided once: no second warning
            model(x[:3])
    # same file locally: OnnxModel reads the Softmax from the graph; both heads agree bit for bit
    with RemoteModel.from_url(prob_server.model_url, output="logits") as model:
        with pytest.warns(UserWarning, match="probabilities"):
            logits = model(x)
        np.testing.assert_array_equal(logits, np.log(raw))
        local = OnnxModel(softmax_path, device="cpu", output="logits", batch_size=16, intra_op_threads=1)
        np.testing.assert_array_equal(logits, local(x))


def test_logits_server_is_decided_logits(server, demo_path, x) -> None:
    raw = raw_outputs(demo_path, x)
    with RemoteModel.from_url(server.model_url, output="probs") as model:
        with pytest.warns(UserWarning, match=r"answers with logits .*ends_in_softmax=False"):
            out = model(x)
        assert model.ends_in_softmax is False
        e = np.exp(raw.astype(np.float64) - raw.max(axis=1, keepdims=True))
        np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-6, atol=1e-7)  # float32 softmax
        local = OnnxModel(demo_path, device="cpu", output="probs", batch_size=16, intra_op_threads=1)
        np.testing.assert_array_equal(out, local(x))


def test_declared_head_is_kept_without_warning(prob_server, softmax_path, x) -> None:
    raw = raw_outputs(softmax_path, x[:4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with RemoteModel.from_url(prob_server.model_url, output="probs", ends_in_softmax=True) as model:
            np.testing.assert_array_equal(model(x[:4]), raw)
            assert model.describe()["ends_in_softmax_source"] == "declared"
        # declared wrong on purpose: the declaration wins (softmax over probabilities), as documented
        with RemoteModel.from_url(prob_server.model_url, output="probs", ends_in_softmax=False) as model:
            np.testing.assert_array_equal(model(x[:4]), softmax(raw.copy()))
        with RemoteModel.from_url(prob_server.model_url, output="raw") as model:  # raw: decided, not said
            np.testing.assert_array_equal(model(x[:4]), raw)
            assert model.ends_in_softmax is True
    with pytest.raises(InvalidInputError, match="ends_in_softmax must be None"):
        RemoteModel.from_url(prob_server.model_url, ends_in_softmax="yes")


def test_probability_rule_at_its_edges() -> None:
    p = np.array([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])
    assert looks_like_probabilities(p)
    assert looks_like_probabilities(p + np.array([[0.9e-3, 0, 0], [0, 0, 0]]))  # within 1e-3
    assert not looks_like_probabilities(p + np.array([[1.1e-3, 0, 0], [0, 0, 0]]))
    assert not looks_like_probabilities(np.array([[1.2, -0.2, 0.0]]))  # sums to 1, one negative
    assert not looks_like_probabilities(np.array([[0.5, 0.5, 0.0], [0.2, 0.2, 0.2]]))  # one row off
    assert PROBABILITY_TOLERANCE == 1e-3


def test_remote_spec_carries_ends_in_softmax(prob_server, softmax_path, x) -> None:
    from onnxplain.distributed import RemoteModelSpec

    with pytest.raises(InvalidInputError, match="ends_in_softmax must be None, True or False"):
        RemoteModelSpec(prob_server.model_url, {"ends_in_softmax": "auto"})
    with pytest.raises(InvalidInputError, match=r"RemoteModel takes no option 'softmax'; it takes .*ends_in_softmax"):
        RemoteModelSpec(prob_server.model_url, {"softmax": True})
    declared = RemoteModelSpec(prob_server.model_url, {"ends_in_softmax": True, "output": "probs"})
    assert declared.identity()["ends_in_softmax"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = declared.build()
        np.testing.assert_array_equal(model(x[:2]), raw_outputs(softmax_path, x[:2]))
        model.close()
    auto = RemoteModelSpec(prob_server.model_url, {"output": "probs"}).build()
    with pytest.warns(UserWarning, match="probabilities"):
        auto(x[:2])
    assert auto.ends_in_softmax is True
    auto.close()
