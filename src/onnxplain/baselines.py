"""Baselines x̂ (the "substrate" a perturbation or a path starts from), defined once.

A :class:`Baseline` is parsed once from what a user gives (``"zero"``, a number, ``"blur"`` or
``"blur(k,σ)"``, or an array), records itself in ``Explanation.params`` in one format
(:meth:`Baseline.describe`) and resolves to one value per explicand for numpy
(:meth:`Baseline.resolve`) or torch (:meth:`Baseline.resolve_torch`). Black-box methods, white-box
methods and the perturbation metrics all use it, so "blur" means the same image everywhere.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from onnxplain.checks import check_odd_kernel
from onnxplain.errors import InvalidInputError
from onnxplain.filters import BLUR_SIGMA, BLUR_SIZE, blur, blur_torch

if TYPE_CHECKING:
    import torch

BaselineKind = Literal["zero", "constant", "blur", "array"]
_BLUR_TEXT = re.compile(r"^blur\(\s*(\d+)\s*,\s*([0-9.eE+-]+)\s*\)$")
_WHAT = "must be 'zero', 'blur', 'blur(size,sigma)', a number or an array"


@dataclass(frozen=True, eq=False)
class Baseline:
    """A validated baseline: ``kind`` plus its constant, blur kernel or array.

    Arrays may have shape (C,) (one value per channel), (C,H,W) or (1,H,W) (one for every
    explicand) or (B,C,H,W) (one per explicand); the shape is checked against the explicands by
    :meth:`resolve`, before any query. Their values are taken as they are (integer arrays too:
    a baseline is a value, not an image to rescale); bool, complex, string and object arrays are
    refused.
    """

    kind: BaselineKind
    value: float = 0.0
    kernel: tuple[int, float] = (BLUR_SIZE, BLUR_SIGMA)
    array: np.ndarray | None = field(default=None, repr=False)
    what: str = field(default="baseline", repr=False)

    # -- parsing ------------------------------------------------------------------------------
    @classmethod
    def parse(
        cls, spec: Any, *, blur_kernel: tuple[int, float] = (BLUR_SIZE, BLUR_SIGMA), what: str = "baseline"
    ) -> Baseline:
        """A Baseline from a user's spec; ``blur_kernel`` is what a bare ``"blur"`` means and
        ``what`` the argument's name in error messages (``"substrate"``, ``"replacement"``…)."""
        if isinstance(spec, Baseline):
            return spec
        if isinstance(spec, str):
            return cls._parse_text(spec.strip(), blur_kernel, what)
        if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
            if not math.isfinite(spec):
                raise InvalidInputError(f"a constant {what} must be finite, got {spec!r}.")
            return cls("constant", float(spec))
        if isinstance(spec, bool) or spec is None:
            raise InvalidInputError(f"{what} {_WHAT}, not {spec!r}.")
        return cls._parse_array(spec, what)

    @classmethod
    def _parse_text(cls, text: str, blur_kernel: tuple[int, float], what: str) -> Baseline:
        if text == "zero":
            return cls("zero")
        if text == "blur":
            return cls("blur", kernel=check_odd_kernel("blur", *blur_kernel))
        match = _BLUR_TEXT.match(text)
        if match:
            return cls("blur", kernel=check_odd_kernel("blur", int(match[1]), float(match[2])))
        raise InvalidInputError(f"{what} {_WHAT}, not {text!r}.")

    @classmethod
    def _parse_array(cls, spec: Any, what: str) -> Baseline:
        if hasattr(spec, "detach"):  # a torch tensor
            spec = spec.detach().cpu().numpy()
        try:
            arr = np.array(spec)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{what} {_WHAT}, not {type(spec).__name__}.") from None
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise InvalidInputError(f"a {what} array must hold real numbers, got dtype {arr.dtype}.")
        arr = arr.astype(np.float64)  # float32 for numpy, x's dtype for torch
        if arr.ndim not in (0, 1, 3, 4):
            raise InvalidInputError(
                f"a {what} array must have shape (C,), (C,H,W) or (B,C,H,W), got shape {arr.shape}."
            )
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"the {what} array holds NaN or infinite values.")
        if arr.ndim == 0:
            return cls("constant", float(arr))
        arr.setflags(write=False)
        return cls("array", array=arr, what=what)

    # -- recording ----------------------------------------------------------------------------
    def describe(self) -> str | float:
        """JSON-friendly record for ``Explanation.params``: ``"zero"``, the constant,
        ``"blur(31,5.0)"`` or ``"array(3, 224, 224)"``."""
        if self.kind == "constant":
            return self.value
        if self.kind == "blur":
            return f"blur({self.kernel[0]},{self.kernel[1]})"
        if self.kind == "array":
            assert self.array is not None
            return "array(" + ", ".join(map(str, self.array.shape)) + ")"
        return "zero"

    @property
    def is_zero(self) -> bool:
        return self.kind == "zero" or (self.kind == "constant" and self.value == 0.0)

    # -- resolving ----------------------------------------------------------------------------
    def _array_for(self, shape: tuple[int, ...]) -> np.ndarray:
        """The array spec broadcast to a (B,C,H,W) ``shape`` (refused if it does not fit)."""
        assert self.array is not None
        arr = self.array
        b, c = shape[0], shape[1]
        if arr.ndim == 1:
            if arr.shape[0] not in (1, c):
                raise InvalidInputError(f"the {self.what} has {arr.shape[0]} channel values but the explicands have {c}.")
            arr = arr.reshape(1, -1, 1, 1)
        elif arr.ndim == 3:
            arr = arr[None]
        fits = arr.shape[2:] == shape[2:] and arr.shape[1] in (1, c) and arr.shape[0] in (1, b)
        if arr.ndim == 4 and self.array.ndim != 1 and not fits:
            raise InvalidInputError(
                f"the {self.what} has shape {tuple(self.array.shape)} but the explicands have shape "
                f"{tuple(shape[1:])} (batch of {b})."
            )
        return np.broadcast_to(arr, shape)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """Refuse an array baseline that does not fit explicands of (B,C,H,W) ``shape`` (no work
        done: for methods that resolve the baseline only after their first forward)."""
        if self.kind == "array":
            self._array_for(tuple(shape))

    def resolve(self, batch: np.ndarray) -> np.ndarray:
        """The (B,C,H,W) float32 baseline of each explicand of ``batch``."""
        if self.kind == "zero":
            return np.zeros_like(batch, dtype=np.float32)
        if self.kind == "constant":
            return np.full(batch.shape, self.value, dtype=np.float32)
        if self.kind == "blur":
            return blur(batch, *self.kernel)
        return np.ascontiguousarray(self._array_for(tuple(batch.shape)), dtype=np.float32)

    def resolve_torch(self, x: torch.Tensor) -> torch.Tensor:
        """The (B,C,H,W) baseline of the batch tensor ``x``, in its dtype and on its device."""
        import torch

        if self.kind == "zero":
            return torch.zeros_like(x)
        if self.kind == "constant":
            return torch.full_like(x, self.value)
        if self.kind == "blur":
            return blur_torch(x, *self.kernel)
        arr = self._array_for(tuple(x.shape))
        return torch.tensor(np.ascontiguousarray(arr), device=x.device, dtype=x.dtype)
