"""Output heads read from the graph (or the module), what ``output=`` does with each, and describe()."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.models import FunctionModel, Normalize, OnnxModel, softmax
from tests.models.builders import linear_model, qdq_softmax_model, written_softmax_model

SHAPE = (2, 3, 4)
W = np.random.default_rng(7).normal(size=(24, 5)).astype(np.float32)


def scores(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).astype(np.float64) @ W


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


@pytest.fixture()
def batch() -> np.ndarray:
    return np.random.default_rng(0).random((9, *SHAPE), dtype=np.float32)


@pytest.mark.parametrize(
    "graph,head,op",
    [
        (linear_model(W, SHAPE), "logits", "MatMul"),
        (linear_model(W, SHAPE, final="Softmax"), "softmax", "Softmax"),
        (linear_model(W, SHAPE, final="LogSoftmax"), "logsoftmax", "LogSoftmax"),
        (linear_model(W, SHAPE, final="Sigmoid"), "sigmoid", "Sigmoid"),
        (written_softmax_model(W, SHAPE), "softmax", "Div of an Exp"),
        (qdq_softmax_model(W, SHAPE), "softmax", "Softmax"),  # seen through QuantizeLinear/DequantizeLinear
        (linear_model(W, SHAPE, final="Exp"), "unknown", "Exp"),
    ],
    ids=["matmul", "softmax", "logsoftmax", "sigmoid", "written-softmax", "qdq-softmax", "exp"],
)
def test_head_is_read_from_the_graph(graph: bytes, head: str, op: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = OnnxModel(graph, output="raw")
    assert model.head == head and op in model.head_source
    assert model.ends_in_softmax == (head == "softmax")


def test_written_out_softmax_is_not_softmaxed_again(batch: np.ndarray) -> None:
    model = OnnxModel(written_softmax_model(W, SHAPE), output="probs")
    np.testing.assert_allclose(model(batch), softmax(scores(batch)), rtol=1e-5, atol=1e-6)


def test_sigmoid_head_gives_its_probabilities_as_they_are_and_says_so(batch: np.ndarray) -> None:
    graph = linear_model(W, SHAPE, final="Sigmoid")
    with pytest.warns(UserWarning, match="Sigmoid.*multi-label") as record:
        model = OnnxModel(graph, output="probs", batch_size=4)
        probs = model(batch)
        model(batch)
    assert len([w for w in record if "Sigmoid" in str(w.message)]) == 1  # once, at construction
    np.testing.assert_allclose(probs, sigmoid(scores(batch)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(probs.sum(axis=1), 1)  # no softmax across classes
    described = model.describe()
    assert described["head"] == "sigmoid" and "as they are" in described["output_effect"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when the user chose another output
        logits = OnnxModel(graph, output="logits")(batch)
        raw = OnnxModel(graph, output="raw")(batch)
    np.testing.assert_allclose(logits, scores(batch), rtol=1e-3, atol=1e-3)  # log(q / (1 − q)) = z
    np.testing.assert_allclose(raw, probs, rtol=0, atol=0)


def test_unknown_head_refuses_probs_and_names_the_fix(batch: np.ndarray) -> None:
    graph = linear_model(W, SHAPE, final="Exp")
    with pytest.raises(ModelLoadError, match=r"produced by Exp.*head='logits'.*output='raw'"):
        OnnxModel(graph, output="probs")
    np.testing.assert_allclose(OnnxModel(graph, output="raw")(batch), np.exp(scores(batch)), rtol=1e-5)
    declared = OnnxModel(graph, output="probs", head="logits")
    assert declared.head == "logits" and declared.head_source == "declared"
    np.testing.assert_allclose(declared(batch), softmax(np.exp(scores(batch))), rtol=1e-5, atol=1e-7)
    as_probs = OnnxModel(graph, output="probs", head="softmax")  # the user says: these are probabilities
    np.testing.assert_allclose(as_probs(batch), np.exp(scores(batch)), rtol=1e-5)


def test_bad_head_names() -> None:
    with pytest.raises(InvalidInputError, match="head"):
        OnnxModel(linear_model(W, SHAPE), head="probabilities")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="head"):
        FunctionModel(lambda z: z, (2,), 2, head="unknown")  # type: ignore[arg-type]


def test_describe_is_json_and_records_every_decision(batch: np.ndarray) -> None:
    norm = Normalize((0.5, 0.25), (0.2, 0.4))
    model = OnnxModel(linear_model(W, SHAPE, final="Softmax"), preprocess=norm, batch_size=8)
    d = json.loads(json.dumps(model.describe()))
    assert d["adapter"] == "OnnxModel" and d["source"] == "<bytes>" and d["input_shape"] == [2, 3, 4]
    assert d["layout"] == "NCHW" and d["channel_order"] == "RGB"
    assert d["preprocess"] == {"mean": [0.5, 0.25], "std": [0.2, 0.4]}
    assert d["input_dtype"] == "float32" and d["input_conversion"].startswith("none") and d["input_quantum"] == 0
    assert d["head"] == "softmax" and "produced by Softmax" in d["head_source"]
    assert d["output"] == "probs" and "no second softmax" in d["output_effect"]
    assert d["device"] == "cpu" and d["batch_size"] == 8 and d["batch_size_source"] == "given"
    fixed = OnnxModel(linear_model(W, SHAPE, batch=4)).describe()
    assert fixed["batch_size_source"] == "fixed by the graph's batch axis"
    fn = FunctionModel(scores, SHAPE, 5, ends_in_softmax=True).describe()
    assert fn["adapter"] == "FunctionModel" and fn["source"] == "scores" and fn["head"] == "softmax"
    assert fn["output"] == "raw" and fn["output_effect"] == "the model's outputs as they are"
    json.dumps(fn)


def test_torch_heads_from_the_last_submodule(batch: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    from onnxplain.models import TorchModel

    def net(last: torch.nn.Module | None) -> torch.nn.Module:
        layers = [torch.nn.Flatten(), torch.nn.Linear(24, 5)]
        return torch.nn.Sequential(*layers, *([last] if last is not None else []))

    assert TorchModel(net(None), SHAPE).head == "logits"
    assert TorchModel(net(torch.nn.LogSoftmax(dim=1)), SHAPE).head == "logsoftmax"
    with pytest.warns(UserWarning, match="Sigmoid"):
        multi = TorchModel(net(torch.nn.Sigmoid()), SHAPE, output="probs")
    assert multi.head == "sigmoid" and "Sigmoid" in multi.head_source
    with torch.inference_mode():
        expected = multi.module(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(multi(batch), expected, rtol=1e-6)
    declared = TorchModel(net(None), SHAPE, ends_in_softmax=True)
    assert declared.head == "softmax" and declared.describe()["adapter"] == "TorchModel"
    json.dumps(declared.describe())
