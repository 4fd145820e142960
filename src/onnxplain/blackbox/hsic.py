"""HSIC attribution (Novello, Fel & Vigouroux, "Making Sense of Dependence: Efficient Black-box
Explanations Using Dependence Measure", NeurIPS 2022).

The explicand is perturbed through n binary grid designs X ∈ {0,1}^{n×d} (d = g² cells, 1 keeps
the cell: :mod:`onnxplain.blackbox.grid_masks`), made by rounding a seeded Latin hypercube
(default, as the paper) or a scrambled Sobol sample: X = 1[U ≥ ½], Bernoulli(½) cells. With
y_j = f_t(perturb(x, X_j)), cell i scores the Hilbert–Schmidt independence criterion between
X_i and Y, as xplique scales it:

    Score_i = (1/n)·tr(H K^(i) H · H L H),   H = I − 11ᵀ/n,

K^(i)_jk = δ(X_ji = X_ki) (a Dirac kernel on the cell; the references add a constant, which the
centring removes) and L_jk = exp(−(y_j − y_k)² / (2σ²)). Since H K^(i) H = 2 H s_i s_iᵀ H for the
0/1 column s_i = X[:, i], this is the identity

    Score_i = (2/n) · s_iᵀ L̃ s_i,   L̃ = HLH,

computed as (2/n)·s̃_iᵀ L s̃_i with s̃_i = H s_i (H is idempotent), L built in row blocks: O(n·d)
memory instead of the references' d×n×n tensor. Scores are ≥ 0 and unsigned.

Bandwidth σ (``bandwidth``): ``"pairwise"`` (default) = median of |y_j − y_k| over pairs j < k,
invariant to y → y + c; ``"reference"`` = |median(y)|, the references' choice (shift-dependent).
σ = 0 with unequal outputs takes the σ → 0 limit L_jk = 1[y_j = y_k] (the references get NaN);
equal outputs give all scores 0.

Bias: Score_i/n is the V-statistic HSIC estimate. For a cell the model ignores, with the n/2
ones of a balanced column (LHS rounding, n even) independent of y, E[Score_i | y] =
½·n/(n−1)·(1 − L̄) ≤ ½·n/(n−1) exactly (L̄ the mean of L), i.e. an O(1/n) bias of Score_i/n,
while a relevant cell's Score_i grows like n·HSIC_i.

Streaming: the design (n×d bytes; needed whole by the score) is drawn once per explanation from
the seed, queries are written from its rows block by block and only the n outputs are kept.
Scoring holds the n×d centred design in float64 and a 256×n block of L; the pairwise bandwidth
sorts the n(n−1)/2 pairwise differences (n² · 4 bytes: 9 MB at n = 1,500, 100 MB at n = 5,000).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from onnxplain.blackbox.base import Attribution, BlackBoxExplainer, Call
from onnxplain.blackbox.grid_masks import (
    GridPerturbation,
    GridQueries,
    GridUpsampler,
    check_grid,
    qmc_engine,
    sobol_rows,
    upsample_indices,
)
from onnxplain.blackbox.sampling import block_ranges
from onnxplain.checks import check_choice, check_positive_int

SAMPLERS: tuple[str, ...] = ("lhs", "sobol")
BANDWIDTHS: tuple[str, ...] = ("pairwise", "reference")
KERNEL_ROWS = 256
"""Rows of the output Gram matrix L held at once while scoring (256·n float64)."""


def binary_design(sampler: str, n: int, d: int, seed: int) -> np.ndarray:
    """The (n, d) bool design: 1[U ≥ ½] of a seeded Latin hypercube or scrambled Sobol sample U.

    LHS with n even puts exactly n/2 ones in each column (strata below ½ round down); a Sobol
    sample does when n is a power of 2 (other n lose the sequence's balance, but stay valid).
    """
    if sampler == "lhs":
        u = qmc_engine("lhs", d, seed, "hsic").random(n)
    else:
        u = sobol_rows(qmc_engine("sobol", d, seed, "hsic"), 0, n)
    return u >= 0.5


def pairwise_median(y: np.ndarray) -> float:
    """Median of |y_j − y_k| over the n(n − 1)/2 pairs j < k (n(n−1)/2 float64 held once).

    The differences are written row block by row block of the upper triangle (temporaries of
    ~256·n entries), then partially sorted in place.
    """
    n = len(y)
    out = np.empty(n * (n - 1) // 2)
    pos = 0
    for lo, hi in block_ranges(n - 1, KERNEL_ROWS):
        j = np.arange(lo, hi)  # rows of the block
        counts = n - 1 - j  # pairs (j, k > j) per row
        starts = np.cumsum(counts) - counts
        total = int(counts.sum())
        k = np.arange(total) - np.repeat(starts - j - 1, counts)  # k = j + 1 … n − 1 per row
        np.subtract(y[k], np.repeat(y[j], counts), out=out[pos : pos + total])
        pos += total
    np.abs(out, out=out)
    return float(np.median(out, overwrite_input=True)) if len(out) else 0.0


def output_bandwidth(y: np.ndarray, mode: str) -> float:
    """σ of the output kernel: ``"pairwise"`` median |y_j − y_k|, or ``"reference"`` |median(y)|."""
    return pairwise_median(y) if mode == "pairwise" else abs(float(np.median(y)))


def rbf_rows(y_rows: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """Rows of L: exp(−(y_j − y_k)²/(2σ²)), or the σ → 0 limit 1[y_j = y_k] when σ = 0."""
    diff = y_rows[:, None] - y[None, :]
    if sigma == 0.0:
        return (diff == 0.0).astype(np.float64)
    np.square(diff, out=diff)  # in place: one (rows, n) array
    diff *= -1.0 / (2.0 * sigma**2)
    return np.exp(diff, out=diff)


def hsic_scores(design: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """Score_i = (2/n)·s_iᵀ L̃ s_i = (2/n)·s̃_iᵀ L s̃_i for every cell: (d,) float64.

    ``design`` (n, d) 0/1, ``y`` (n,) outputs, ``sigma`` the output bandwidth. Equal outputs
    give exactly 0 (L̃ = 0).
    """
    n = len(y)
    if np.ptp(y) == 0.0:
        return np.zeros(design.shape[1])
    s = design.astype(np.float64)
    s_c = s - s.mean(axis=0)  # H s_i                                        (n, d)
    l_s = np.empty_like(s_c)  # L H s_i, one block of L rows at a time       (n, d)
    for lo, hi in block_ranges(n, KERNEL_ROWS):
        l_s[lo:hi] = rbf_rows(y[lo:hi], y, sigma) @ s_c
    return 2.0 / n * np.einsum("ji,ji->i", s_c, l_s)


class HsicQueries(GridQueries):
    """The binary design's queries and the n kept outputs of every explicand."""

    def __init__(self, call: Call, hsic: HSIC, upsampler: GridUpsampler) -> None:
        super().__init__(call, hsic.perturbation, upsampler)
        self.n = hsic.n_queries
        self.grid = hsic.grid
        self.x = hsic.design()  # (n, d) bool
        self.y = np.zeros((call.n, self.n))  # (B, n)

    def draw(self, k: int, lo: int, hi: int) -> tuple[Any, int, int]:
        rows = self.x[lo:hi].astype(np.float32).reshape(-1, self.grid, self.grid)
        return self.ops.asarray(rows), lo, hi

    def consume(self, block: tuple[Any, int, int], scores: np.ndarray) -> None:
        _, lo, hi = block
        self.y[:, lo:hi] = scores


class HSIC(BlackBoxExplainer):
    """HSIC attribution: dependence between each g×g mask cell and the target score (Novello et al. 2022).

    Args:
        n_queries: n, the number of binary designs = perturbed forwards per explicand (1,500,
            the paper's "most faithful" setting; 750 its budget one). ``Explanation.n_queries``
            adds the forward on x. Scoring costs O(n²·d) time (see the module docstring for memory).
        grid: g, cells per side (7 as the paper and its notebook; xplique's default is 8).
        sampler: ``"lhs"`` (rounded Latin hypercube, the paper) or ``"sobol"`` (rounded
            scrambled Sobol, xplique's default; a power-of-2 n keeps its balance); both seeded from ``seed``. The reference's
            pairing of n/2 LHS rows of 2d columns into n masks is not reproduced.
        bandwidth: ``"pairwise"`` (median pairwise distance of the outputs, shift-invariant) or
            ``"reference"`` (|median(y)| as the references).
        perturbation, baseline, amplitude_sigma, mask_upsampling: as :class:`~onnxplain.blackbox.sobol.Sobol`
            (see :mod:`onnxplain.blackbox.grid_masks`); inpainting with x̂ = 0 by default.
        seed, queries_per_call, array_backend: see :class:`~onnxplain.blackbox.base.BlackBoxExplainer`;
            the design is generated on the host, so both backends make the same queries.

    ``Explanation.diagnostics``: ``bandwidth`` σ per explicand. The map repeats the bicubically
    resized g×g scores over the C channels.
    """

    name = "hsic"
    signed_map = False
    budget_param = "n_queries"
    uses_baseline = True

    def __init__(
        self,
        n_queries: int = 1500,
        grid: int = 7,
        sampler: str = "lhs",
        bandwidth: str = "pairwise",
        perturbation: str = "inpainting",
        baseline: Any = None,
        amplitude_sigma: float = 1.0,
        mask_upsampling: str = "nearest",
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        super().__init__(seed=seed, queries_per_call=queries_per_call, array_backend=array_backend)
        self.n_queries = check_positive_int("n_queries", n_queries, 2)
        self.grid = check_positive_int("grid", grid)
        self.sampler = check_choice("sampler", sampler, SAMPLERS)
        self.bandwidth = check_choice("bandwidth", bandwidth, BANDWIDTHS)
        self.perturbation = GridPerturbation(perturbation, baseline, amplitude_sigma)
        self.baseline = self.perturbation.baseline
        self.mask_upsampling = check_choice("mask_upsampling", mask_upsampling, ("nearest", "bilinear"))

    def design(self) -> np.ndarray:
        """The (n, d) bool design these settings and seed give (the same for every explicand)."""
        return binary_design(self.sampler, self.n_queries, self.grid**2, self.seed)

    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        return self.n_queries + 1  # f(x) and the n designs

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "grid": self.grid,
            "sampler": self.sampler,
            "bandwidth": self.bandwidth,
            **self.perturbation.params(),
            "mask_upsampling": self.mask_upsampling,
            "output_upsampling": "bicubic",
        }

    def _setup(self, batch: np.ndarray) -> GridUpsampler:
        h, w = batch.shape[2:]
        check_grid(self.grid, h, w)
        return GridUpsampler(self.grid, h, w, self.mask_upsampling)

    def _attribute(self, call: Call) -> Attribution:
        b, _, h, w = call.x.shape
        queries = HsicQueries(call, self, call.setup)
        call.run(queries)
        sigma = np.array([output_bandwidth(y, self.bandwidth) for y in queries.y])  # (B,)
        dirac = (sigma == 0.0) & (np.ptp(queries.y, axis=1) > 0.0)
        if dirac.any():
            warnings.warn(
                f"HSIC: the {self.bandwidth} output bandwidth is 0 for explicand(s) {np.flatnonzero(dirac).tolist()}; "
                "the σ → 0 limit of the RBF kernel, 1[y_j = y_k], is used.",
                stacklevel=3,
            )
        # Score_i = (2/n)·s_iᵀ HLH s_i per explicand                        (B, d)
        scores = np.stack([hsic_scores(queries.x, y, s) for y, s in zip(queries.y, sigma, strict=True)])
        # g×g scores, bicubically resized                                  (B, 1, H, W)
        pixel_map = upsample_indices(scores.reshape(b, self.grid, self.grid), h, w)
        return Attribution(np.broadcast_to(pixel_map, call.x.shape), diagnostics={"bandwidth": sigma})
