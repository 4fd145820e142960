"""Baselines x̂ of the path methods (Integrated Gradients): zero, constant, blurred explicand, array."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from onnxplain.errors import InvalidInputError

BLUR_SIZE = 31
BLUR_SIGMA = 5.0


@lru_cache(maxsize=32)
def _blur_operator(n: int, size: int, sigma: float) -> np.ndarray:
    """(n, n) matrix A with A @ v = v correlated with the Gaussian taps, torch ``reflect`` padding.

    The taps are ``exp(-t²/2σ²)`` at ``t = -(size//2) … size//2``, normalised to sum 1
    (torchvision's ``GaussianBlur`` kernel). torch's ``reflect`` (about the edge sample, without
    repeating it) is scipy's ``mirror``; scipy keeps reflecting when the kernel is wider than the
    image, so the operator is defined for every size.
    """
    t = np.arange(size, dtype=np.float64) - size // 2
    taps = np.exp(-(t**2) / (2.0 * sigma**2))
    taps /= taps.sum()
    op = ndimage.correlate1d(np.eye(n), taps, axis=0, mode="mirror")
    op.setflags(write=False)
    return op


def gaussian_blur(x: torch.Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Per-channel Gaussian blur of (…, H, W): ``A_H · X · A_Wᵀ`` with separable operators.

    Equals ``torchvision.transforms.functional.gaussian_blur(x, [size, size], [sigma, sigma])``
    (the GEEX reference's "blur" baseline, 31/5.0, reflect padding) wherever that is defined
    (H, W > size//2), and is the same definition as the black-box side's blur baseline.
    """
    if size < 1 or size % 2 == 0:
        raise InvalidInputError(f"the blur kernel size must be a positive odd integer, got {size}.")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise InvalidInputError(f"the blur sigma must be positive and finite, got {sigma}.")
    h, w = x.shape[-2:]
    ah = torch.tensor(_blur_operator(int(h), size, float(sigma)), dtype=x.dtype, device=x.device)
    aw = torch.tensor(_blur_operator(int(w), size, float(sigma)), dtype=x.dtype, device=x.device)
    return ah @ x @ aw.T


def check_baseline_spec(baseline: Any) -> Any:
    """Validate a baseline given to a constructor: "zero", "blur", a number or an array."""
    if isinstance(baseline, str):
        if baseline not in ("zero", "blur"):
            raise InvalidInputError(
                f"baseline must be 'zero', 'blur', a number or an array, not {baseline!r}."
            )
        return baseline
    if isinstance(baseline, bool):
        raise InvalidInputError("baseline must be 'zero', 'blur', a number or an array, not a bool.")
    if isinstance(baseline, (int, float, np.integer, np.floating)):
        if not math.isfinite(float(baseline)):
            raise InvalidInputError(f"a constant baseline must be finite, got {baseline}.")
        return float(baseline)
    if isinstance(baseline, torch.Tensor):
        arr = baseline.detach()
    else:
        try:
            arr = torch.from_numpy(np.asarray(baseline, dtype=np.float64))
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"baseline must be 'zero', 'blur', a number or an array, not {type(baseline).__name__}."
            ) from None
    if not bool(torch.isfinite(arr).all()):
        raise InvalidInputError("the baseline array contains NaN or infinite values.")
    return arr


def describe_baseline(baseline: Any) -> Any:
    """JSON-friendly record of a baseline spec for ``Explanation.params``."""
    if isinstance(baseline, (str, float)):
        return baseline
    return f"array{tuple(baseline.shape)}"


def make_baseline(baseline: Any, x: torch.Tensor) -> torch.Tensor:
    """The (B,C,H,W) baseline for the batch ``x`` from a validated spec."""
    if isinstance(baseline, str):
        return torch.zeros_like(x) if baseline == "zero" else gaussian_blur(x)
    if isinstance(baseline, float):
        return torch.full_like(x, baseline)
    arr = baseline.to(device=x.device, dtype=x.dtype)
    if arr.shape == x.shape[1:]:
        return arr.unsqueeze(0).expand_as(x).contiguous()
    if arr.shape == x.shape:
        return arr.contiguous()
    raise InvalidInputError(
        f"the baseline has shape {tuple(arr.shape)}; expected one explicand {tuple(x.shape[1:])} "
        f"or the batch {tuple(x.shape)}."
    )
