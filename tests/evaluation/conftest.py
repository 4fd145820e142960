"""Toy models for the evaluation tests: analytic functions whose curves can be derived by hand."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from onnxplain.models.base import FunctionModel, softmax


class Recorder:
    """Wraps a numpy function and keeps a copy of every batch it is asked."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.fn = fn
        self.batches: list[np.ndarray] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(np.array(batch, copy=True))
        return self.fn(batch)

    @property
    def images(self) -> np.ndarray:
        return np.concatenate(self.batches, axis=0)


@pytest.fixture
def recording_model() -> Callable[..., tuple[FunctionModel, Recorder]]:
    """``make(shape, num_classes=2)``: a FunctionModel scoring sum(z) (class 0) and −sum(z) (class 1)."""

    def make(shape: tuple[int, int, int], **kwargs: object) -> tuple[FunctionModel, Recorder]:
        def fn(z: np.ndarray) -> np.ndarray:
            s = z.reshape(len(z), -1).sum(axis=1, dtype=np.float64)
            return np.stack([s, -s], axis=1)

        rec = Recorder(fn)
        return FunctionModel(rec, shape, 2, **kwargs), rec

    return make


@pytest.fixture
def linear_softmax() -> tuple[FunctionModel, np.ndarray, np.ndarray]:
    """f = softmax(W·x) on (3, 8, 8) inputs with 5 classes; returns (model, W (5, 192), x batch (6,3,8,8))."""
    rng = np.random.default_rng(123)
    w = rng.normal(0.0, 0.35, size=(5, 3 * 8 * 8))
    x = rng.uniform(0.0, 1.0, size=(6, 3, 8, 8)).astype(np.float32)

    def fn(z: np.ndarray) -> np.ndarray:
        return softmax(z.reshape(len(z), -1).astype(np.float64) @ w.T)

    return FunctionModel(fn, (3, 8, 8), 5), w, x
