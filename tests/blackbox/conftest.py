"""Analytic toy models for the black-box explainer tests (all through FunctionModel)."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.models.base import FunctionModel


def flat(z: object) -> np.ndarray:
    """A query batch (numpy or CPU torch tensor) as float64 rows."""
    arr = np.asarray(z, dtype=np.float64)
    return arr.reshape(len(arr), -1)


def scalar_model(fn, shape, **kwargs) -> FunctionModel:
    """Two-class model whose class 0 is ``fn(rows)`` and class 1 its negation."""

    def forward(z: object) -> np.ndarray:
        v = fn(flat(z))
        return np.stack([v, -v], axis=1)

    return FunctionModel(forward, shape, 2, **kwargs)


@pytest.fixture(scope="session")
def demo_models():
    """The shipped demo CNN as an ONNX Runtime model and as a TorchModel (probabilities)."""
    from onnxplain.demo import load_demo_digits, load_demo_model, load_demo_torch
    from onnxplain.models.torch import TorchModel

    x, _ = load_demo_digits()
    return load_demo_model(output="probs", device="cpu", batch_size=256), TorchModel(
        load_demo_torch(), output="probs"
    ), x
