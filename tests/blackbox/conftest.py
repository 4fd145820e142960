"""Analytic toy models for the black-box explainer tests (all through FunctionModel), a spying
model that keeps every query, and the table of methods the shared accounting tests cover."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from onnxplain.blackbox import GE, GEEX, GEFA, HSIC, LIME, RISE, KernelSHAP, Occlusion, PartitionSHAP, Sobol
from onnxplain.blackbox.base import BlackBoxExplainer
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


# -- shared harness: a spying model and the table of black-box methods ----------------------------


class SpyModel(FunctionModel):
    """A FunctionModel that keeps a float32 copy of every query it is sent, in order.

    ``scores(rows)`` maps (N, D) float64 rows to (N, num_classes) scores; ``sent`` is every query
    forwarded so far as one (N, *input_shape) array (f(x) and f(x̂) included).
    """

    def __init__(self, scores, shape, num_classes: int = 2, **kwargs) -> None:
        self.batches: list[np.ndarray] = []
        self.scores = scores
        super().__init__(self._record, shape, num_classes, **kwargs)

    def _record(self, z: object) -> np.ndarray:
        arr = np.array(np.asarray(z), dtype=np.float32, copy=True)
        self.batches.append(arr)
        return self.scores(flat(arr))

    @property
    def sent(self) -> np.ndarray:
        return np.concatenate(self.batches) if self.batches else np.empty((0, *self.input_shape), np.float32)


def tanh_scores(shape, seed: int = 0):
    """Scores ±tanh(w·z / √D) of a fixed random projection: smooth, non-linear, two classes."""
    w = np.random.default_rng(seed).normal(size=int(np.prod(shape))) / np.sqrt(np.prod(shape))

    def scores(rows: np.ndarray) -> np.ndarray:
        v = np.tanh(rows @ w)
        return np.stack([v, -v], axis=1)

    return scores


@dataclass(frozen=True)
class Method:
    """One black-box method as the shared tests drive it.

    ``make(budget, **options)`` builds the explainer with ``budget`` in its budget argument (its
    :attr:`~onnxplain.blackbox.base.BlackBoxExplainer.budget_param`) and the common keyword
    options (``seed``, ``queries_per_call``, ``array_backend``); ``shape`` is a (C,H,W) input the
    method accepts with its defaults.
    """

    name: str
    make: Callable[..., BlackBoxExplainer]
    cost: Callable[[int], int]
    """Forwards one explicand costs for a given budget, as the method documents it (f(x) included)."""
    shape: tuple[int, int, int] = (3, 8, 8)


METHODS: list[Method] = [
    Method("geex", lambda n, **kw: GEEX(n, **kw), lambda n: n - n % 2 + 2),  # pairs, f(x), f(x̂)
    Method("geex-unpaired", lambda n, **kw: GEEX(n, mirror=False, **kw), lambda n: n + 2),
    Method("geex-path", lambda n, **kw: GEEX(n, noise="path", grid=4, **kw), lambda n: n - n % 2 + 2),
    Method("ge", lambda n, **kw: GE(n, **kw), lambda n: n - n % 2 + 1),  # pairs, f(x)
    Method("ge-unpaired", lambda n, **kw: GE(n, mirror=False, **kw), lambda n: n + 1),
    Method("rise", lambda n, **kw: RISE(n, grid=4, **kw), lambda n: n + 1),  # masks, f(x)
    Method("lime", lambda n, **kw: LIME(n, **kw), lambda n: n + 1),  # samples (row 0 = x), f(x)
    # Sobol: N(d + 1) for the largest power of two N that fits (d = 2×2 cells), and f(x)
    Method("sobol", lambda n, **kw: Sobol(n, grid=2, **kw), lambda n: 2 ** int(np.log2(n // 5)) * 5 + 1),
    Method("hsic", lambda n, **kw: HSIC(n, grid=2, **kw), lambda n: n + 1),  # designs, f(x)
    Method("gefa", lambda n, **kw: GEFA(n, **kw), lambda n: n - n % 2 + 2),  # antithetic pairs, f(x), f(x̂)
    # the finest stride that fits: (3,1,1) windows at stride 1 on 8×8 are 64 windows, and f(x)
    Method("occlusion", lambda n, **kw: Occlusion(n, **kw), lambda n: 65),
    Method("kernelshap", lambda n, **kw: KernelSHAP(n, segmentation="grid", n_segments=16, **kw), lambda n: n),
    Method("partitionshap", lambda n, **kw: PartitionSHAP(n, **kw), lambda n: 2 + 2 * ((n - 2) // 2)),
]
"""Every black-box method, covered by ``test_accounting.py`` (counts, budget) for one explicand
and a batch. A new method is covered by adding one line here."""


def method_params() -> list:
    return [pytest.param(m, id=m.name) for m in METHODS]
