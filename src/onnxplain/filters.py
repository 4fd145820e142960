"""Linear filters and resampling operators, defined once for numpy and torch.

A 1-D linear filter with mirror padding is applied as an (n, n) operator matrix ``A`` whose rows
are the filter's response (``A @ v`` = ``v`` filtered), so a separable 2-D filter of (…, H, W)
images is ``A_h · X · A_wᵀ``: the same matrices serve numpy and torch, any image size, and any
batch shape. Mirror padding reflects about the edge sample without repeating it (torch
``reflect``, scipy.ndimage ``mirror``); scipy keeps reflecting when the kernel is wider than the
signal, so every operator is defined for every size.

- :func:`gaussian_taps` — torchvision's ``GaussianBlur`` kernel;
- :func:`blur` / :func:`blur_torch` — Gaussian blur (the GEEX paper's "blur" baseline and
  deletion replacement, kernel 31, σ 5);
- :func:`smoothing_kernel` / :func:`smoothing_variance` — GEEX's Frobenius-normalised noise
  smoothing (Cai & Wunder 2024, §3.3);
- :func:`bilinear_operator` — order-1 resizing (RISE's mask up-sampling; ``edge="clamp"`` for
  TF/torch bilinear);
- :func:`nearest_operator` / :func:`bicubic_operator` — nearest and bicubic resizing (Sobol and
  HSIC mask up-sampling and index maps).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from onnxplain.checks import check_choice, check_odd_kernel

if TYPE_CHECKING:  # torch is imported only by the functions that take tensors
    import torch

BLUR_SIZE = 31
BLUR_SIGMA = 5.0
"""The blur of the GEEX reference code (torchvision ``GaussianBlur((31, 31), 5.0)``)."""


def gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """Taps ``exp(-t²/2σ²)`` at integer offsets ``t = -(size//2) … size//2``, summing to 1.

    The same taps as torchvision's ``GaussianBlur`` kernel and the GEEX reference's smoothing
    filter (before its Frobenius normalisation).
    """
    size, sigma = check_odd_kernel("Gaussian", size, sigma)
    t = np.arange(size, dtype=np.float64) - size // 2
    w = np.exp(-(t**2) / (2.0 * sigma**2))
    return w / w.sum()


@lru_cache(maxsize=64)
def _filter_operator_cached(n: int, taps: tuple[float, ...]) -> np.ndarray:
    eye = np.eye(n, dtype=np.float64)
    op = ndimage.correlate1d(eye, np.asarray(taps), axis=0, mode="mirror")
    op.setflags(write=False)
    return op


def filter_operator(n: int, taps: np.ndarray) -> np.ndarray:
    """The (n, n) float64 matrix ``A`` with ``A @ v`` = ``v`` correlated with ``taps``, mirror padding."""
    return _filter_operator_cached(int(n), tuple(float(t) for t in taps))


def blur(images: np.ndarray, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Gaussian blur of (…, H, W) arrays per channel, in float32 (``A_h · X · A_wᵀ``).

    Equals torchvision ``GaussianBlur((size, size), sigma)`` on inputs large enough for torch's
    reflect padding, and is defined for smaller ones too.
    """
    taps = gaussian_taps(size, sigma)
    h, w = images.shape[-2:]
    ah = filter_operator(h, taps).astype(np.float32)
    aw = filter_operator(w, taps).astype(np.float32)
    return (ah @ np.asarray(images, np.float32) @ aw.T).astype(np.float32)


def blur_torch(x: torch.Tensor, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """:func:`blur` for a tensor (…, H, W), in its dtype and on its device."""
    import torch

    taps = gaussian_taps(size, sigma)
    h, w = x.shape[-2:]
    ah = torch.tensor(filter_operator(int(h), taps), dtype=x.dtype, device=x.device)
    aw = torch.tensor(filter_operator(int(w), taps), dtype=x.dtype, device=x.device)
    return ah @ x @ aw.T


def smoothing_taps(size: int, sigma: float) -> np.ndarray:
    """``u = taps / ‖taps‖₂``: the 1-D factor of :func:`smoothing_kernel`."""
    u = gaussian_taps(size, sigma)
    return u / np.linalg.norm(u)


def smoothing_kernel(size: int, sigma: float) -> np.ndarray:
    """The 2-D GEEX smoothing kernel ``w / ‖w‖_F`` (Cai & Wunder 2024, §3.3), so ``Σ k² = 1``.

    ``w`` is the outer product of :func:`gaussian_taps`; it stays separable after normalisation:
    ``k = u uᵀ`` with ``u`` = :func:`smoothing_taps`.
    """
    u = smoothing_taps(size, sigma)
    return np.outer(u, u)


def smoothing_variance(height: int, width: int, size: int, sigma: float) -> np.ndarray:
    """Per-pixel variance of unit white noise after :func:`smoothing_kernel` with mirror padding.

    Exactly 1 in the interior (``Σ k² = 1``); near the border the reflected taps fold onto the
    same samples and the variance grows (up to ≈1.44 in a corner for (5, 0.7)).
    """
    u = smoothing_taps(size, sigma)
    vh = (filter_operator(height, u) ** 2).sum(axis=1)
    vw = (filter_operator(width, u) ** 2).sum(axis=1)
    return np.outer(vh, vw)


def bilinear_operator(n_in: int, n_out: int, edge: str = "mirror") -> np.ndarray:
    """(n_out, n_in) matrix of order-1 resizing with half-pixel centres: source ``c = (i + ½)·n_in/n_out − ½``.

    ``edge="mirror"``: the interpolation ``skimage.transform.resize(order=1, mode="reflect",
    anti_aliasing=False)`` performs along one axis (skimage's "reflect" is scipy's "mirror");
    RISE up-samples its grids with it. ``edge="clamp"``: ``c`` is clamped to [0, n_in − 1] (edge
    samples repeated), as TF2 ``tf.image.resize(method="bilinear")`` and torch
    ``interpolate(mode="bilinear", align_corners=False)`` without antialiasing. Separable, so a
    2-D resize is ``R_h · G · R_wᵀ``.
    """
    c = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if check_choice("edge", edge, ("mirror", "clamp")) == "clamp":
        c = np.clip(c, 0.0, n_in - 1)
    i0 = np.floor(c).astype(np.int64)
    t = c - i0
    op = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    for idx, weight in ((i0, 1.0 - t), (i0 + 1, t)):
        if n_in == 1:
            idx = np.zeros_like(idx)
        elif edge == "clamp":
            idx = np.minimum(idx, n_in - 1)
        else:
            period = 2 * (n_in - 1)
            idx = np.abs(np.mod(idx, period))
            idx = np.where(idx > n_in - 1, period - idx, idx)
        np.add.at(op, (rows, idx), weight)
    return op


def nearest_operator(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) 0/1 matrix of nearest-neighbour resizing: output i takes input
    ``⌊(i + ½)·n_in/n_out⌋``, the sample whose cell holds the output pixel's centre.

    TF2 ``tf.image.resize(method="nearest")`` and torch ``interpolate(mode="nearest-exact")``;
    torch's legacy ``mode="nearest"`` takes ``⌊i·n_in/n_out⌋`` instead, which differs by at most
    one pixel when n_out is not a multiple of n_in. Applying it copies values exactly.
    """
    src = np.minimum(np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)
    op = np.zeros((n_out, n_in), dtype=np.float64)
    op[np.arange(n_out), src] = 1.0
    return op


BICUBIC_A = -0.75
"""The Keys cubic-convolution parameter of OpenCV ``INTER_CUBIC`` and torch ``bicubic``."""


def _keys_cubic(x: np.ndarray, a: float = BICUBIC_A) -> np.ndarray:
    """Keys (1981) kernel: (a+2)|x|³ − (a+3)|x|² + 1 on |x| ≤ 1, a|x|³ − 5a|x|² + 8a|x| − 4a on 1 < |x| < 2."""
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return np.where(x <= 1.0, near, np.where(x < 2.0, far, 0.0))


def bicubic_operator(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of bicubic resizing along one axis (no antialiasing).

    Source ``c = (i + ½)·n_in/n_out − ½``, taps ``⌊c⌋ − 1 … ⌊c⌋ + 2`` weighted by the Keys kernel
    with a = −0.75, indices clamped to [0, n_in − 1] (edge samples repeated): OpenCV
    ``cv2.resize(interpolation=INTER_CUBIC)`` and torch ``interpolate(mode="bicubic",
    align_corners=False)``. Up-sampling may overshoot the input range (the kernel has negative
    lobes); n_in = n_out gives the identity exactly.
    """
    c = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(c).astype(np.int64)
    t = c - i0
    op = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    for k in (-1, 0, 1, 2):
        np.add.at(op, (rows, np.clip(i0 + k, 0, n_in - 1)), _keys_cubic(t - k))
    return op
