"""The input classes of the table, shared by every API group: explicands, targets, integers.

Decisions (the same for every entry point that takes explicands: black-box and white-box
explainers, metrics, the dataset runner, a QueryModel's ``__call__``):

- floating-point arrays of any precision (float16/32/64, numpy or torch) are accepted and
  converted to the computation's dtype (float32 for queries; the module's dtype for gradients);
- integer, boolean, complex, string and object arrays are refused with InvalidInputError: an
  integer image is ambiguous (0–255 grey levels or 0/1 values?) and converting it silently would
  explain a different image than the user meant;
- read-only, Fortran-ordered, negatively strided and sliced arrays are ordinary input and must
  give exactly the map of their contiguous copy;
- targets: ints, numpy/torch integers and integer-valued floats are accepted; bools, fractions,
  NaN, strings, negatives, indices ≥ the class count and the wrong number of targets are refused;
- integer arguments (budgets, steps, sizes, seeds): Python/numpy ints only; bools, floats (even
  16.0), strings and None are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tests.bad_input.env import CLASSES, SHAPE, Env

X = Callable[[Env], Any]


def _poison(value: float) -> X:
    def make(env: Env) -> np.ndarray:
        x = env.x()
        x[1, 2, 3] = value
        return x

    return make


BAD_X: dict[str, X] = {
    "NaN explicand": _poison(np.nan),
    "+inf explicand": _poison(np.inf),
    "-inf explicand": _poison(-np.inf),
    "int64 explicand": lambda env: (env.x() > 0.5).astype(np.int64),
    "uint8 explicand (0-255)": lambda env: (env.x() * 255).astype(np.uint8),
    "bool explicand": lambda env: env.x() > 0.5,
    "complex explicand": lambda env: env.x().astype(np.complex64),
    "string-array explicand": lambda env: np.full(SHAPE, "0.5"),
    "ragged-list explicand": lambda env: [[0.0, 1.0], [0.0]],
    "None explicand": lambda env: None,
    "scalar explicand": lambda env: np.float32(0.5),
    "2-D explicand (H,W)": lambda env: env.x()[0],
    "5-D explicand": lambda env: env.x(1)[None],
    "wrong channel count": lambda env: env.x()[:1],
    "wrong height": lambda env: np.zeros((3, 9, 8), np.float32),
    "empty batch": lambda env: np.zeros((0, *SHAPE), np.float32),
    "int torch tensor explicand": lambda env: torch.ones(SHAPE, dtype=torch.int64),
}
"""Explicands every entry point must refuse with InvalidInputError before any query."""


def _read_only(env: Env) -> np.ndarray:
    x = env.x()
    x.setflags(write=False)
    return x


def _read_only_strided_batch(env: Env) -> np.ndarray:
    big = np.repeat(np.repeat(env.x(2), 2, axis=2), 2, axis=3)
    view = big[:, :, ::2, ::2]
    view.setflags(write=False)
    return view


VALID_X: dict[str, X] = {
    "float64 explicand": lambda env: env.x().astype(np.float64),
    "float16 explicand": lambda env: env.x().astype(np.float16),
    "read-only explicand": _read_only,
    "Fortran-order explicand": lambda env: np.asfortranarray(env.x()),
    "negative-stride explicand": lambda env: env.x()[:, ::-1, :],
    "read-only strided batch": _read_only_strided_batch,
    "torch tensor explicand": lambda env: torch.from_numpy(env.x()),
}
"""Unusual but valid explicands: each must give the map of its contiguous float32 copy."""


def reference_x(x: Any) -> np.ndarray:
    """The contiguous, writable float32 copy a valid explicand stands for."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.array(x, dtype=np.float32, order="C", copy=True)


BAD_TARGETS: dict[str, tuple[Any, int | None]] = {
    "target = num_classes": (CLASSES, None),
    "target far out of range": (1000, None),
    "negative target": (-1, None),
    "fractional target": (1.5, None),
    "NaN target": (float("nan"), None),
    "string target": ("1", None),
    "bool target": (True, None),
    "object target": (object(), None),
    "too many targets": ([0, 1, 2], 2),
    "too few targets": ([0], 2),
    "2-D targets": ([[0], [1]], 2),
}
"""(target, batch size or None for one explicand) pairs every entry point must refuse."""

VALID_TARGETS: dict[str, tuple[Any, int | None, list[int]]] = {
    "integer-valued float target": (1.0, None, [1]),
    "numpy integer target": (np.int64(2), None, [2]),
    "one target per explicand": ([0, 3], 2, [0, 3]),
}
"""(target, batch size, the classes that must be explained)."""

BAD_COUNTS: dict[str, Any] = {
    "zero": 0,
    "negative": -3,
    "string": "16",
    "bool": True,
    "float": 16.0,
    "None": None,
    "NaN": float("nan"),
}
"""Values refused wherever a positive integer (budget, steps, size) is expected."""

BAD_SEEDS: dict[str, Any] = {"negative seed": -1, "string seed": "0", "bool seed": True, "float seed": 1.5}
