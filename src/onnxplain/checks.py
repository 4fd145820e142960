"""Argument checks, defined once for the whole package.

Every public constructor and function validates its arguments at the door with these, so that a
bad value fails with one :class:`~onnxplain.errors.InvalidInputError` sentence naming the argument,
before any query is spent. Integers are Python or numpy integers (never ``bool``); real numbers are
Python or numpy reals (never ``bool`` or strings).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer ≥ ``minimum`` (1 by default)."""
    if not _is_int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise InvalidInputError(f"{name} must be {what}, got {value!r}.")
    return int(value)


def check_optional_positive_int(name: str, value: Any) -> int | None:
    """``None`` or an integer ≥ 1 (batch sizes and the like, where ``None`` means automatic)."""
    return None if value is None else check_positive_int(name, value)


def check_shape(name: str, value: Any) -> tuple[int, ...]:
    """A non-empty sequence of positive integers (a tensor shape such as (C, H, W))."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) == 0:
        raise InvalidInputError(f"{name} must be a sequence of positive integers, got {value!r}.")
    if not all(_is_int(d) and d > 0 for d in value):
        raise InvalidInputError(f"{name} must be a sequence of positive integers, got {tuple(value)!r}.")
    return tuple(int(d) for d in value)


def check_positive_float(name: str, value: Any) -> float:
    """A finite real number > 0."""
    if not _is_real(value) or not (math.isfinite(value) and value > 0):
        raise InvalidInputError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def check_nonnegative_float(name: str, value: Any) -> float:
    """A finite real number ≥ 0."""
    if not _is_real(value) or not (math.isfinite(value) and value >= 0):
        raise InvalidInputError(f"{name} must be a non-negative finite number, got {value!r}.")
    return float(value)


def check_probability(name: str, value: Any, *, open_low: bool = True, open_high: bool = False) -> float:
    """A real number in (0, 1] by default; ``open_low``/``open_high`` say which ends are excluded."""
    ok = _is_real(value) and math.isfinite(value)
    if ok:
        ok = (value > 0 if open_low else value >= 0) and (value < 1 if open_high else value <= 1)
    if not ok:
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise InvalidInputError(f"{name} must be a probability in {interval}, got {value!r}.")
    return float(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}.")
    return value


def check_bool(name: str, value: Any) -> bool:
    """``True`` or ``False`` (not a truthy stand-in)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_seed(seed: Any) -> int:
    """A non-negative integer seed."""
    if not _is_int(seed) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def check_bounds(bounds: Any, name: str = "bounds") -> tuple[float, float]:
    """A pair ``(low, high)`` of finite numbers with low < high."""
    try:
        if isinstance(bounds, (str, bytes)) or not all(_is_real(b) for b in bounds):
            raise TypeError
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a pair (low, high), got {bounds!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidInputError(f"{name} must be finite with low < high, got {bounds!r}.")
    return lo, hi


def check_odd_kernel(name: str, size: Any, sigma: Any) -> tuple[int, float]:
    """A Gaussian kernel ``(size, sigma)``: a positive odd size and a positive finite sigma."""
    size = check_positive_int(f"{name} kernel size", size)
    if size % 2 == 0:
        raise InvalidInputError(f"the {name} kernel size must be odd, got {size}.")
    return size, check_positive_float(f"{name} sigma", sigma)


def check_float_array(name: str, value: Any, dtype: Any = np.float32) -> np.ndarray:
    """A floating-point array (numpy, CPU or CUDA torch tensor, nested sequences of floats) as
    ``dtype`` (``None``: the array's own float dtype).

    Floats of any precision are accepted and converted. Integer, boolean, complex, string and
    object arrays are refused: explicands are real pixel values, and an integer image is ambiguous
    (0–255 grey levels or 0/1 values?), so converting it silently would explain another image
    than the one meant. The shape is the caller's to check.
    """
    if hasattr(value, "detach") and hasattr(value, "is_floating_point"):  # a torch tensor
        if not value.is_floating_point():
            raise InvalidInputError(_not_float(name, str(value.dtype).replace("torch.", "")))
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a floating-point array, got {type(value).__name__}.") from None
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidInputError(_not_float(name, arr.dtype.name))
    return arr if dtype is None else arr.astype(dtype, copy=False)


def check_real_array(name: str, value: Any) -> np.ndarray:
    """An array of real numbers (integers or floats, e.g. an attribution map or a ranking) as
    float64; bool, complex, string and object arrays, ragged lists and None are refused."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be an array of numbers, got {type(value).__name__}.") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidInputError(f"{name} must be an array of real numbers, got dtype {arr.dtype}.")
    return arr.astype(np.float64, copy=False)


def _not_float(name: str, dtype: str) -> str:
    hint = " (scale integer pixels yourself, e.g. x.astype(np.float32) / 255)" if "int" in dtype else ""
    return f"{name} must be a floating-point array (float16/32/64), got dtype {dtype}{hint}."


def check_targets(target: Any, n: int, num_classes: int | None = None) -> np.ndarray | None:
    """Explicit targets as an (n,) int64 array: an int for every explicand or one per explicand.

    ``None`` stays ``None`` (the caller takes the top class). Integer-valued floats are accepted;
    booleans, fractions, NaN, negatives and (when ``num_classes`` is known) indices ≥
    ``num_classes`` are refused.
    """
    if target is None:
        return None
    if hasattr(target, "detach"):  # a torch tensor
        target = target.detach().cpu().numpy()
    try:
        t = np.asarray(target)
    except (TypeError, ValueError):
        raise InvalidInputError(f"target must be an int or a sequence of {n} ints, got {target!r}.") from None
    if t.ndim == 0:
        t = np.full(n, t)
    if t.ndim != 1 or len(t) != n:
        raise InvalidInputError(f"target must be an int or a sequence of {n} ints, got shape {t.shape}.")
    numeric = np.issubdtype(t.dtype, np.integer) or np.issubdtype(t.dtype, np.floating)
    if t.dtype == bool or not numeric:
        raise InvalidInputError("target must hold integer class indices.")
    if np.issubdtype(t.dtype, np.floating) and not (np.isfinite(t).all() and np.all(np.mod(t, 1) == 0)):
        raise InvalidInputError("target must hold integer class indices.")
    t = t.astype(np.int64)
    if np.any(t < 0):
        raise InvalidInputError(f"target {int(t[t < 0][0])} is out of range: class indices are ≥ 0.")
    if num_classes is not None and np.any(t >= num_classes):
        bad = int(t[t >= num_classes][0])
        raise InvalidInputError(f"target {bad} is out of range for a model with {num_classes} classes.")
    return t
