"""SmoothGrad (Smilkov et al. 2017): the gradient averaged over Gaussian-noised copies of x."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from onnxplain.checks import check_bool, check_nonnegative_float, check_positive_int, check_seed
from onnxplain.gradients._common import (
    GradientMethod,
    MemoryFormat,
    Output,
    Result,
    Runner,
    sum_groups,
    torch_generator,
)
from onnxplain.gradients.integrated import plan_chunks

NOISE_BLOCK = 32
"""Noise samples per generation block; block j comes from its own generator seeded (seed, j)."""

_STREAM = 11  # SeedSequence spawn key of SmoothGrad's noise stream


class SmoothGrad(GradientMethod):
    """SG_i(x) = (1/N) Σ_{n=1}^N ∂h(f(x + δ_n))_y/∂x_i, δ_n ~ N(0, σ²I) (review Eq. 40).

    σ is absolute, in input units (the reference driver: Captum ``NoiseTunnel(Saliency)`` with
    ``stdevs=0.15``, ``nt_samples=50``, ``abs=False`` on [0,1] pixels; the noisy input is not
    clipped). ``abs=True`` averages |∂h/∂x_i| instead (Captum's ``Saliency`` default).

    Noise: sample n's δ_n depends only on (seed, n): it is drawn in blocks of
    :data:`NOISE_BLOCK` samples, block j from a torch generator on the model's device seeded from
    ``SeedSequence(seed, spawn_key=(11, j))``. Every explicand of a call sees the same noise set,
    so its map depends neither on the rest of the batch nor on ``batch_size``; :meth:`noise`
    returns that noise (e.g. to hand the same draws to another implementation).

    Args:
        samples: N, noisy copies per explicand.
        sigma: standard deviation σ of the noise, absolute.
        seed: seed of the noise.
        abs: average absolute gradients.
        output, device, batch_size, memory_format: see :class:`~onnxplain.gradients.saliency.Saliency`.
    """

    name = "smoothgrad"
    budget_param = "samples"
    seeded = True

    def __init__(
        self,
        samples: int = 50,
        sigma: float = 0.15,
        seed: int = 0,
        abs: bool = False,
        *,
        output: Output = "probs",
        device: str | None = None,
        batch_size: int | None = None,
        memory_format: MemoryFormat = "auto",
    ) -> None:
        super().__init__(output=output, device=device, batch_size=batch_size, memory_format=memory_format)
        self.samples = check_positive_int("samples", samples)
        self.sigma = check_nonnegative_float("sigma", sigma)
        self.seed = check_seed(seed)
        self.abs = check_bool("abs", abs)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "samples": self.samples,
            "sigma": self.sigma,
            "seed": self.seed,
            "abs": self.abs,
        }

    def noise(
        self,
        shape: tuple[int, ...],
        *,
        start: int = 0,
        stop: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """σ·δ_start … σ·δ_{stop−1} for one explicand of ``shape``: a (stop − start, *shape) tensor.

        Noise block j (samples j·B … (j+1)·B − 1, B = ``NOISE_BLOCK``) is ``randn((B, *shape))``
        from its own generator, so a sample's noise does not depend on how samples are chunked.
        Whole blocks are drawn in place (``normal_`` on a contiguous slice draws what ``randn``
        would), so the common case makes no concatenated copy.
        """
        stop = self.samples if stop is None else stop
        out = torch.empty((stop - start, *shape), device=device, dtype=dtype)
        for j in range(start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1):
            b0, b1 = j * NOISE_BLOCK, min((j + 1) * NOISE_BLOCK, self.samples)
            lo, hi = max(b0, start), min(b1, stop)
            gen = torch_generator(np.random.SeedSequence(self.seed, spawn_key=(_STREAM, j)), out.device)
            if (lo, hi) == (b0, b1):
                out[lo - start : hi - start].normal_(generator=gen)
            else:
                block = torch.randn((b1 - b0, *shape), generator=gen, device=out.device, dtype=dtype)
                out[lo - start : hi - start] = block[lo - b0 : hi - b0]
        return out.mul_(self.sigma)

    def _attribute(
        self, run: Runner, x: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor | None
    ) -> Result:
        total = torch.zeros_like(x)
        shape = tuple(x.shape[1:])
        cached: tuple[int, int, torch.Tensor] | None = None
        for i0, i1, k0, k1 in plan_chunks(x.shape[0], self.samples, run.batch_size):
            nb, nk = i1 - i0, k1 - k0
            if cached is None or cached[:2] != (k0, k1):
                cached = (k0, k1, self.noise(shape, start=k0, stop=k1, device=x.device, dtype=x.dtype))
            pts = run.empty_chunk((nb * nk, *shape))
            torch.add(x[i0:i1, None], cached[2][None], out=pts.view(nb, nk, *shape))
            g, _ = run.grad(pts, targets[i0:i1].repeat_interleave(nk))
            if self.abs:
                g = g.abs()
            total[i0:i1] += sum_groups(g, nb)
        return Result(total / self.samples, params={"noise_block": NOISE_BLOCK})
