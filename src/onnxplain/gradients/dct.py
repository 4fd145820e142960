"""The 2-D DCT-II over the last two axes as precomputed orthonormal matrices (any device).

``dct2(X) = D_H · X · D_Wᵀ`` and ``idct2(Y) = D_Hᵀ · Y · D_W`` with the orthonormal DCT-II matrix
D[k, i] = √(2/n) · c_k · cos(π(2i + 1)k / 2n), c_0 = 1/√2, c_k = 1 otherwise (Ahmed et al. 1974).
D is orthogonal, so ``idct2`` inverts ``dct2`` exactly (up to rounding); ``dct2`` equals
``scipy.fft.dctn(X, type=2, axes=(-2, -1), norm="ortho")``. The AttEXplore reference uses the
unnormalised FFT-based pair (``norm=None``); since its spectral mask multiplies elementwise,
IDCT(M ⊙ DCT(·)) is the same for every normalisation convention.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch


@lru_cache(maxsize=16)
def _dct_matrix_np(n: int) -> np.ndarray:
    k = np.arange(n, dtype=np.float64)[:, None]
    i = np.arange(n, dtype=np.float64)[None, :]
    d = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    d[0] /= np.sqrt(2.0)
    d.setflags(write=False)
    return d


def dct_matrix(
    n: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The (n, n) orthonormal DCT-II matrix D (rows are frequencies)."""
    return _dct_matrix(int(n), torch.device(device), dtype)


@lru_cache(maxsize=32)
def _dct_matrix(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(_dct_matrix_np(n), dtype=dtype, device=device)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II of (…, H, W) over the last two axes."""
    dh = dct_matrix(x.shape[-2], x.device, x.dtype)
    dw = dct_matrix(x.shape[-1], x.device, x.dtype)
    return dh @ x @ dw.T


def idct2(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2` (the orthonormal DCT-III)."""
    dh = dct_matrix(y.shape[-2], y.device, y.dtype)
    dw = dct_matrix(y.shape[-1], y.device, y.dtype)
    return dh.T @ y @ dw


def spectrum_transform(x: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x̃ = IDCT(DCT(x + ξ) ⊙ M): the frequency-domain input alteration (AttEXplore Eq. 4; SSA).

    With ξ = 0 and M = 1 this is the identity.
    """
    return idct2(dct2(x + noise) * mask)
