"""LIME for images (Ribeiro, Singh & Guestrin, KDD 2016), as the reference ``lime_image``.

1. Superpixels (:mod:`onnxplain.blackbox.segments`): scikit-image quickshift (kernel 4,
   max_dist 200, ratio 0.2) for colour images large enough, a regular grid (or SLIC) for small
   or greyscale ones such as MNIST, or a user-given label array (relabelled to 0..K−1).
2. Binary samples d ∈ {0,1}^K ~ Bernoulli(½), row 0 all-on; sample d becomes the image with the
   segments where d = 0 replaced by the "fudged" image (per-segment mean colour, or a constant).
3. Proximity π(d) = sqrt(exp(−D(d, 1)²/w²)) with D the cosine distance between d and the
   all-on row (in the binary space, not in pixels), w = ``kernel_width`` = 0.25.
4. Weighted ridge regression y ≈ β₀ + βᵀd (α = ``ridge_alpha``, intercept unpenalised), solved in
   closed form from streamed sufficient statistics (Σπ x xᵀ, Σπ x y, Σπ y² with x = [1, d]), so
   memory does not grow with the sample count; the weighted R² comes from the same sums.
5. Map: β_k painted on segment k (repeated over the channels).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from onnxplain.blackbox.base import Attribution, BlackBoxExplainer, Call
from onnxplain.blackbox.sampling import Ops
from onnxplain.blackbox.segments import Segmenter, check_segmentation, grid_segments, groups_of_equal, relabel
from onnxplain.checks import check_choice, check_nonnegative_float, check_positive_float, check_positive_int
from onnxplain.errors import InvalidInputError

__all__ = ["LIME", "grid_segments", "kernel_weights", "relabel", "solve_ridge"]  # superpixels: segments.py

GRID_CELLS = 7
SLIC_SEGMENTS = 50


def kernel_weights(n_on: Any, n_segments: int, kernel_width: float) -> Any:
    """π = sqrt(exp(−d²/w²)) with d = 1 − sqrt(n_on/K), the cosine distance to the all-on row.

    An all-off row has distance 1 (sklearn's convention for a zero vector): π = exp(−1/(2w²)).
    """
    d = 1.0 - (n_on / n_segments) ** 0.5
    return (-(d**2) / kernel_width**2 / 2.0).exp() if hasattr(d, "exp") else np.exp(-(d**2) / kernel_width**2 / 2.0)


def solve_ridge(
    xtwx: np.ndarray, xtwy: np.ndarray, sw: float, swy: float, swyy: float, alpha: float
) -> tuple[np.ndarray, float, float]:
    """Weighted ridge from sufficient statistics: returns (coefficients, intercept, weighted R²).

    Minimises Σπ(y − β₀ − βᵀd)² + α‖β‖² (β₀ unpenalised, as sklearn ``Ridge(fit_intercept=True)``
    with ``sample_weight=π``); R² = 1 − Σπ(y − ŷ)² / Σπ(y − ȳ_π)² as ``Ridge.score``.
    """
    k1 = xtwx.shape[0]
    penalty = np.eye(k1) * alpha
    penalty[0, 0] = 0.0
    try:
        theta = np.linalg.solve(xtwx + penalty, xtwy)
    except np.linalg.LinAlgError:
        # e.g. ridge_alpha=0 with fewer informative samples than segments: sklearn's Ridge then
        # falls back to least squares too (the minimum-norm solution), and says so
        warnings.warn(
            "LIME: the surrogate's normal equations are singular (ridge_alpha=0 with too few or too "
            "narrowly weighted samples); using the minimum-norm least-squares solution.",
            stacklevel=4,
        )
        theta = np.linalg.lstsq(xtwx + penalty, xtwy, rcond=None)[0]
    sse = swyy - 2.0 * theta @ xtwy + theta @ xtwx @ theta
    sst = swyy - swy**2 / sw
    r2 = 1.0 - sse / sst if sst > 1e-300 else 1.0
    return theta[1:], float(theta[0]), float(r2)


class LIME(BlackBoxExplainer):
    """LIME image explainer with a weighted ridge surrogate on superpixels.

    Args:
        n_samples: binary samples (row 0 all-on); each is one forward.
        segmentation: ``"auto"`` (quickshift for colour images with both sides ≥ 64 pixels,
            else a 7×7 grid), ``"quickshift"`` (4, 200, 0.2, on the image scaled to [0,1]),
            ``"slic"``, ``"grid"``, or an integer label array (H,W) or (B,H,W) (any labels,
            e.g. starting at 1: they are relabelled to 0..K−1).
        hide: ``"mean"`` (each hidden segment takes its own mean colour, the reference default)
            or a constant value for hidden pixels.
        kernel_width: w of the proximity kernel (0.25).
        ridge_alpha: ridge penalty (1.0).
        n_segments: cells for ``"grid"`` (rounded to a square, default 7×7 = 49) or the target
            segment count for ``"slic"`` (default 50).
        seed, queries_per_call, array_backend: see :class:`~onnxplain.blackbox.base.BlackBoxExplainer`;
            the seed also seeds quickshift, and explicands with the same segment count see the
            same samples.

    ``Explanation.diagnostics``: ``r2`` (weighted R² of the surrogate), ``n_segments``,
    ``intercept``. The reference explains the top-5 labels; here one target per explicand.
    """

    name = "lime"
    budget_param = "n_samples"

    def __init__(
        self,
        n_samples: int = 1000,
        segmentation: Any = "auto",
        hide: str | float = "mean",
        kernel_width: float = 0.25,
        ridge_alpha: float = 1.0,
        n_segments: int | None = None,
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        super().__init__(seed=seed, queries_per_call=queries_per_call, array_backend=array_backend)
        self.n_samples = check_positive_int("n_samples", n_samples, 2)
        self.segmentation = check_segmentation(segmentation)
        self.n_segments = None if n_segments is None else check_positive_int("n_segments", n_segments)
        self.segmenter = Segmenter(
            self.segmentation, self.n_segments, self.seed, "quickshift", GRID_CELLS, SLIC_SEGMENTS
        )
        if isinstance(hide, str):
            check_choice("hide", hide, ("mean",))
        elif isinstance(hide, bool) or not isinstance(hide, numbers.Real) or not np.isfinite(hide):
            raise InvalidInputError(f"hide must be 'mean' or a finite number, got {hide!r}.")
        self.hide = hide if isinstance(hide, str) else float(hide)
        self.kernel_width = check_positive_float("kernel_width", kernel_width)
        self.ridge_alpha = check_nonnegative_float("ridge_alpha", ridge_alpha)

    # -- segmentation (onnxplain.blackbox.segments) ---------------------------------------------------
    def describe_segmentation(self, c: int, h: int, w: int) -> str:
        """The segmentation actually used for (C,H,W) images, as recorded in ``params``."""
        return self.segmenter.describe(c, h, w)

    def segment(self, image: np.ndarray, index: int = 0) -> tuple[np.ndarray, int]:
        """Superpixels of one (C,H,W) explicand: labels (H,W) in 0..K−1 and K."""
        return self.segmenter.segment(image, index)

    # -- explanation ------------------------------------------------------------------------------------
    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        return self.n_samples + 1  # f(x) and the samples (row 0 is x itself, as the reference)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "n_segments": self.n_segments,
            "hide": self.hide,
            "kernel_width": self.kernel_width,
            "ridge_alpha": self.ridge_alpha,
        }

    def _setup(self, batch: np.ndarray) -> list[tuple[np.ndarray, int]]:
        """Superpixels (labels, K) of every explicand, before any query."""
        return [self.segment(batch[i], i) for i in range(len(batch))]

    def _attribute(self, call: Call) -> Attribution:
        segs: list[tuple[np.ndarray, int]] = call.setup
        queries = LimeQueries(self, call, segs)
        call.run(queries)
        b, c, h, w = call.x.shape
        attributions = np.empty(call.x.shape, np.float32)
        r2, intercept = np.empty(b), np.empty(b)
        for st in queries.stats:
            for i, (coef, intercept[i], r2[i]) in zip(st.members, st.solve(self.ridge_alpha), strict=True):
                attributions[i] = coef[segs[i][0]][None]  # β_k painted on segment k
        ks = np.asarray([k for _, k in segs], np.int64)
        return Attribution(
            attributions,
            params={"segmentation": self.describe_segmentation(c, h, w)},
            diagnostics={"r2": r2, "n_segments": ks, "intercept": intercept},
        )

    def _fudge(self, image: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
        """The image every hidden segment is taken from: per-segment mean colour or a constant."""
        if self.hide != "mean":
            return np.full_like(image, self.hide)
        flat = labels.ravel()
        counts = np.bincount(flat, minlength=k).astype(np.float64)
        sums = np.stack([np.bincount(flat, weights=ch.ravel(), minlength=k) for ch in image.astype(np.float64)])
        means = sums / counts
        return means[:, labels].astype(np.float32)


class LimeQueries:
    """LIME's samples d ∈ {0,1}^K (row 0 all-on), the queries they make and the streamed ridge
    statistics. Explicands with the same segmentation (a grid, given labels) share the pixel masks
    of a sample, and those with the same segment count share the samples' design statistics."""

    def __init__(self, lime: LIME, call: Call, segs: list[tuple[np.ndarray, int]]) -> None:
        ops = call.ops
        self.lime, self.ops, self.n = lime, ops, lime.n_samples
        ks = [k for _, k in segs]
        self.k_max = max(ks)
        self.hw = call.x.shape[2:]
        self.masks = [(ops.index(segs[group[0]][0].ravel()), group) for group in groups_of_equal(s for s, _ in segs)]
        self.stats = [_RidgeStats(ops, ks[group[0]], group) for group in groups_of_equal(ks)]
        fudged = np.stack([lime._fudge(call.x[i], *segs[i]) for i in range(call.n)])
        self.start = ops.asarray(fudged)
        self.step = ops.asarray(call.x - fudged)

    def draw(self, k: int, lo: int, hi: int) -> Any:
        rng = self.ops.rng(self.lime.seed, "lime", k)
        # column after column, so an explicand's samples d[:, :k] do not depend on k_max,
        # i.e. on the segment counts of the rest of the batch
        d = self.ops.bernoulli_columns(rng, 0.5, hi - lo, self.k_max)
        if lo == 0:
            d[0] = 1.0  # the explicand itself, as the reference's first row
        return d

    def write(self, d: Any, out: Any) -> None:
        h, w = self.hw
        for pixels, group in self.masks:
            on = self.ops.take_columns(d, pixels).reshape(-1, 1, h, w)  # 1 where the pixel's segment is on
            for i in group:
                self.ops.mul_into(on, self.step[i], out[i])
                out[i] += self.start[i]

    def consume(self, d: Any, scores: np.ndarray) -> None:
        y = self.ops.to64(scores)
        for st in self.stats:
            st.add(d, y, self.lime.kernel_width)


class _RidgeStats:
    """Streamed weighted sufficient statistics of the surrogates of the explicands ``members``,
    which share a segment count k and so the samples d[:, :k], the weights π and Σπ x xᵀ
    (x = [1, d]); only the responses y differ: Σπ x y, Σπ y and Σπ y² are kept per member."""

    def __init__(self, ops: Ops, k: int, members: list[int]) -> None:
        self.ops = ops
        self.k = k
        self.members = members
        self.xtwx = ops.zeros64((k + 1, k + 1))  # upper triangle of row 0 and the d block
        self.xtwy = ops.zeros64((len(members), k + 1))  # a row per member (contiguous vectors)
        self.sums = ops.zeros64((len(members), 3))  # Σπ, Σπy, Σπy²

    def add(self, d: Any, y: Any, kernel_width: float) -> None:
        """One block: samples ``d`` (n, ≥ k) and the (B, n) target scores of every explicand."""
        d = self.ops.to64(d[:, : self.k])
        weights = kernel_weights(d.sum(1), self.k, kernel_width)
        dw = d * weights[:, None]
        sw = weights.sum()
        self.xtwx[0, 0] += sw
        self.xtwx[0, 1:] += dw.sum(0)
        self.xtwx[1:, 1:] += dw.T @ d
        for j, i in enumerate(self.members):
            # one member at a time (vector products), so its sums never depend on the group's size
            wy = weights * y[i]
            self.xtwy[j, 0] += wy.sum()
            self.xtwy[j, 1:] += dw.T @ y[i]
            self.sums[j, 0] += sw
            self.sums[j, 1] += wy.sum()
            self.sums[j, 2] += (wy * y[i]).sum()

    def solve(self, alpha: float) -> list[tuple[np.ndarray, float, float]]:
        """(coefficients, intercept, weighted R²) of each member's surrogate."""
        to = self.ops.to_numpy
        xtwx = np.array(to(self.xtwx))
        xtwx[1:, 0] = xtwx[0, 1:]
        xtwy, sums = to(self.xtwy), to(self.sums)
        return [
            solve_ridge(xtwx, xtwy[j], float(sums[j, 0]), float(sums[j, 1]), float(sums[j, 2]), alpha)
            for j in range(len(self.members))
        ]
