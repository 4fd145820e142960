"""GEEX's path noise: Gaussian noise on the *position along the path*, drawn per cell of a coarse grid.

Eq. 3 of Cai & Wunder (2024) places every query at its own point of the straight path,
z = x̂ + α(x − x̂) + δ. With ``noise="path"`` the noise moves each pixel along its own path
direction: pixel i of cell c gets the path position t_i = α + σ·η_c, so

    z = x̂ + (α + σ·Uη) ∘ (x − x̂),        η ~ N(0, I_{g²}),  U: nearest up-sampling of g×g cells,

i.e. δ = σ·(Uη) ∘ (x − x̂), a Gaussian perturbation whose covariance lies along the path. The
score-function identity (the paper's Eq. 1) holds for any Gaussian, and for this one it gives,
with mirrored pairs (±η sharing α),

    S_c = E[(f(z⁺) − f(z⁻)) η_c] / (2σ)  →  Σ_{i ∈ c} (x_i − x̂_i) ∂f_σ/∂x_i,

the cell's share of the path integral of the σ-smoothed f: Σ_c S_c → f_σ(x) − f_σ(x̂)
(completeness, Thm 3.2). The estimate's noise per cell is about ‖S‖/√n: it scales with the
number of cells g², not of pixels (150,528 at 3×224×224), which is what makes a 2,000-query map
of a photo legible. Each cell's S_c is then spread over the cell's pixels and channels in
proportion to |x − x̂| (how far each moves along the path), so the map keeps the explicand's
edges inside a cell and still sums to S_c. Why these choices and what they measure:
``benchmarks/README.md``, "GEEX on photos".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxplain.blackbox.base import Call
from onnxplain.blackbox.sampling import path_alphas

CELL_PIXELS = 16
"""``grid="auto"``: one cell per 16×16 pixels (14×14 cells on 224×224)."""


def auto_grid(height: int, width: int) -> int:
    """Cells per side for ``grid="auto"``: about one per :data:`CELL_PIXELS` pixels, at least 2."""
    return max(2, round(min(height, width) / CELL_PIXELS))


def cell_index(n: int, grid: int) -> np.ndarray:
    """The cell of each of ``n`` rows (or columns) on a ``grid``-cell side: ⌊i·g/n⌋."""
    return (np.arange(n) * grid) // n


def spread(cells: np.ndarray, step: np.ndarray, grid: int) -> np.ndarray:
    """Cell values (B, g, g) spread over the pixels and channels of each cell ∝ |step| (B,C,H,W).

    A cell where the explicand does not move (x = x̂ everywhere) keeps its value nowhere: its
    pixels get 0 (such a cell's S_c is 0 in expectation too).
    """
    b, _, h, w = step.shape
    rows, cols = cell_index(h, grid), cell_index(w, grid)
    weight = np.abs(step).astype(np.float64)  # (B, C, H, W)
    totals = np.zeros((b, grid, grid))
    np.add.at(totals, (slice(None), rows[:, None], cols[None, :]), weight.sum(axis=1))
    per_unit = np.divide(cells, totals, out=np.zeros_like(totals), where=totals > 0)  # (B, g, g)
    return per_unit[:, rows][:, :, cols][:, None] * weight


class PathQueries:
    """The queries x̂ + (α ± σ·Uη) ∘ (x − x̂) of one explanation and the running Σ_i w_i η_i.

    ``w_i = f(z_i⁺) − f(z_i⁻)`` with mirror pairs, else ``f(z_i)``. Noise blocks are (m, g, g),
    shared by every explicand and channel.
    """

    def __init__(self, est: Any, call: Call, grid: int) -> None:
        ops = call.ops
        assert call.baseline is not None
        h, w = call.x.shape[2:]
        self.est, self.ops, self.grid = est, ops, grid
        self.n = est.n_perturbations
        self.pairs = self.n // 2 if est.mirror else self.n
        self.start = ops.asarray(call.baseline)[:, None]  # (B, 1, C, H, W)
        self.step = ops.asarray(call.x - call.baseline)[:, None]
        self.rows = ops.index(cell_index(h, grid))[:, None]
        self.cols = ops.index(cell_index(w, grid))[None, :]
        self.acc = ops.zeros64((call.n, grid * grid))

    def draw(self, k: int, lo: int, hi: int) -> tuple[Any, Any, int]:
        """Block k: m cell noises η (m, g, g) and their path positions α (1, m, 1, 1, 1)."""
        est, ops = self.est, self.ops
        m = (hi - lo) // 2 if est.mirror else hi - lo
        first = lo // 2 if est.mirror else lo
        rng = ops.rng(est.seed, "geex-path", k)
        u = ops.uniform(rng, m)
        eta = ops.normal(rng, (m, self.grid, self.grid))
        alpha = path_alphas(est.alpha, u, np.arange(first, first + m), self.pairs)
        return eta, ops.asarray(alpha.reshape(1, m, 1, 1, 1)), m

    def write(self, block: tuple[Any, Any, int], out: Any) -> None:
        """centre = x̂ + α·(x − x̂) and d = σ·(Uη)∘(x − x̂): + half centre + d, − half centre − d."""
        eta, alpha, m = block
        ops = self.ops
        plus = out[:, :m]
        t = eta[:, self.rows, self.cols][None, :, None] * self.est.sigma  # (1, m, 1, H, W)
        if self.est.mirror:
            minus = out[:, m:]
            ops.mul_into(t, self.step, minus)  # d
            ops.mul_into(alpha, self.step, plus)
            plus += self.start  # centre
            ops.add_into(plus, minus, plus)  # centre + d
            ops.mul_into(minus, -2.0, minus)
            minus += plus  # centre − d
        else:
            ops.add_into(alpha, t, t)
            ops.mul_into(t, self.step, plus)
            plus += self.start

    def consume(self, block: tuple[Any, Any, int], scores: np.ndarray) -> None:
        eta, _, m = block
        weight = self.ops.asarray(scores[:, :m] - scores[:, m:] if self.est.mirror else scores)
        flat = eta.reshape(m, -1)
        for i in range(len(self.acc)):  # one product per explicand: same BLAS path whatever B is
            self.acc[i] += weight[i] @ flat

    def cells(self) -> np.ndarray:
        """S = Σ_i w_i η_i / (n·2σ) (mirrored; n·σ unpaired) per explicand, (B, g, g) float64."""
        scale = self.pairs * (2.0 if self.est.mirror else 1.0) * self.est.sigma
        return self.ops.to_numpy(self.acc).reshape(len(self.acc), self.grid, self.grid) / scale
