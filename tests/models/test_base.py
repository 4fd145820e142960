"""The shared adapter machinery, on plain functions and on the torch adapter."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from onnxplain.checks import check_targets
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models import FunctionModel, Normalize, as_batch, predict
from onnxplain.models.base import preferred_batch_size


def linear(batch: np.ndarray) -> np.ndarray:
    flat = batch.reshape(len(batch), -1)
    return np.stack([flat.sum(1), -flat.sum(1), flat[:, 0]], axis=1)


def test_function_model_chunks_and_counts() -> None:
    model = FunctionModel(linear, (1, 2, 2), 3, batch_size=4)
    x = np.random.default_rng(0).random((10, 1, 2, 2), dtype=np.float32)
    np.testing.assert_allclose(model(x), linear(x), rtol=1e-6)
    assert model.n_calls == 3 and model.n_queries == 10
    assert preferred_batch_size(model) == 4 and preferred_batch_size(model, 7) == 7
    with pytest.raises(InvalidInputError):
        preferred_batch_size(model, 0)


def test_predict_and_targets() -> None:
    model = FunctionModel(linear, (1, 2, 2), 3, max_queries=3)
    x = np.stack([np.ones((1, 2, 2)), -np.ones((1, 2, 2))]).astype(np.float32)
    targets, scores = predict(model, x)
    np.testing.assert_array_equal(targets, [0, 1])
    np.testing.assert_allclose(scores, [4, 4])
    targets, scores = predict(model, x[:1], target=2)
    assert targets.tolist() == [2] and scores.tolist() == [1.0]
    with pytest.raises(QueryBudgetExceeded):
        predict(model, x)
    with pytest.raises(InvalidInputError, match="out of range"):
        check_targets(3, 2, 3)
    with pytest.raises(InvalidInputError, match="sequence of 2"):
        check_targets([0, 1, 2], 2, 3)
    with pytest.raises(InvalidInputError, match="integer"):
        check_targets([0.5, 1], 2, 3)


def test_as_batch() -> None:
    batch, single = as_batch(np.zeros((1, 2, 2)), (1, 2, 2))
    assert single and batch.shape == (1, 1, 2, 2) and batch.dtype == np.float32
    batch, single = as_batch(np.zeros((5, 1, 2, 2)), (1, 2, 2))
    assert not single and batch.shape == (5, 1, 2, 2)
    with pytest.raises(InvalidInputError, match="expected an explicand"):
        as_batch(np.zeros((2, 2)), (1, 2, 2))


def test_normalize_validation() -> None:
    with pytest.raises(InvalidInputError, match="positive"):
        Normalize((0.5,), (0.0,))
    with pytest.raises(InvalidInputError, match="values"):
        Normalize((0.5, 0.5), (1.0,))


def test_torch_model_matches_function() -> None:
    torch = pytest.importorskip("torch")
    from onnxplain.models import TorchModel

    layer = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
    model = TorchModel(layer, (1, 2, 2), output="probs")
    assert model.ends_in_softmax and model.num_classes == 3
    x = np.random.default_rng(1).random((6, 1, 2, 2), dtype=np.float32)
    with torch.inference_mode():
        expected = layer(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-6)
    with pytest.raises(InvalidInputError, match="input_shape"):
        TorchModel(torch.nn.Linear(4, 3))


def test_import_rules() -> None:
    """DESIGN.md §1: the query-only side imports without torch."""
    code = (
        "import sys, onnxplain, onnxplain.blackbox, onnxplain.evaluation, onnxplain.models.onnx, "
        "onnxplain.models.base, onnxplain.report\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.') or m == 'ray')\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
