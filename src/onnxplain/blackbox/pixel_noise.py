"""GEEX's pixel noise (the paper's): δ ~ N(0, σ²) per pixel and channel, optionally smoothed.

:class:`GaussianQueries` writes the queries ``c + α·s ± δ`` of GEEX (centre x̂, step x − x̂) and
GE (centre x, no step) and keeps the running sum ``Σ_i w_i δ_i`` of the score-function estimator
(Cai & Wunder 2024, Eq. 1 and 3); :mod:`onnxplain.blackbox.geex` divides it by n·Var(δ).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxplain.blackbox.base import Call
from onnxplain.blackbox.sampling import path_alphas
from onnxplain.filters import filter_operator, smoothing_taps


class GaussianQueries:
    """The queries ``c + α·s ± δ`` of one explanation and the running sum ``Σ_i w_i δ_i``.

    ``c`` is the centre (x̂ for GEEX, x for GE), ``s`` the path step x − x̂ (None: no path);
    ``w_i = f(z_i⁺) − f(z_i⁻)`` with mirror pairs, else ``f(z_i)``. Noise blocks are (m, C', H, W)
    with C' = 1 when one noise plane is shared by all channels.
    """

    def __init__(self, est: Any, call: Call, centre: np.ndarray, step: np.ndarray | None) -> None:
        ops = call.ops
        b, c, h, w = call.x.shape
        self.est, self.ops = est, ops
        self.n = est.n_perturbations
        self.pairs = self.n // 2 if est.mirror else self.n
        self.noise_shape = (1 if est.noise_channels == "shared" else c, h, w)
        self.centre = ops.asarray(centre)[:, None]
        self.zero_centre = not np.any(centre)  # x̂ = 0 adds nothing (the default baseline)
        self.step = None if step is None else ops.asarray(step)[:, None]
        self.smooth = None
        if est.smoothing is not None:
            u = smoothing_taps(*est.smoothing)
            self.smooth = (ops.asarray(filter_operator(h, u)), ops.asarray(filter_operator(w, u).T))
        self.acc = ops.zeros64((b, int(np.prod(self.noise_shape))))
        self.stream_name = "geex" if step is not None else "ge"

    def draw(self, k: int, lo: int, hi: int) -> tuple[Any, Any, int]:
        """Block k: m noise draws δ (scaled, smoothed) and their path positions α."""
        est, ops = self.est, self.ops
        m = (hi - lo) // 2 if est.mirror else hi - lo
        first = lo // 2 if est.mirror else lo
        rng = ops.rng(est.seed, self.stream_name, k)
        u = ops.uniform(rng, m)
        delta = ops.normal(rng, (m, *self.noise_shape))
        if self.smooth is not None:
            delta = self.smooth[0] @ delta @ self.smooth[1]
        delta *= est.applied_std
        alpha = path_alphas(est.alpha, u, np.arange(first, first + m), self.pairs)
        return delta, ops.asarray(alpha.reshape(1, m, 1, 1, 1)), m

    def write(self, block: tuple[Any, Any, int], out: Any) -> None:
        """centre ± δ, the centre x̂ + α·(x − x̂) written once into the + half."""
        delta, alpha, m = block
        ops = self.ops
        plus = out[:, :m]
        centre = self.centre
        if self.step is not None:
            ops.mul_into(alpha, self.step, plus)
            if not self.zero_centre:
                plus += self.centre
            centre = plus
        if self.est.mirror:
            ops.sub_into(centre, delta, out[:, m:])
        ops.add_into(centre, delta, plus)

    def consume(self, block: tuple[Any, Any, int], scores: np.ndarray) -> None:
        delta, _, m = block
        weight = self.ops.asarray(scores[:, :m] - scores[:, m:] if self.est.mirror else scores)
        flat = delta.reshape(m, -1)
        for i in range(len(self.acc)):  # one product per explicand: same BLAS path whatever B is
            self.acc[i] += weight[i] @ flat

    def total(self) -> np.ndarray:
        """``Σ_i w_i δ_i`` per explicand, (B, C', H, W) float64."""
        return self.ops.to_numpy(self.acc).reshape(len(self.acc), *self.noise_shape)
