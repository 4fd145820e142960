"""KernelSHAP over superpixels (Lundberg & Lee, NeurIPS 2017, arXiv 1705.07874).

The estimand is the Shapley value φ of the segment game v(S) = f_t(x on the segments S, x̂
elsewhere), M segments. Its weighted least-squares form: φ minimises

    Σ_z π(z) (v(z) − φ₀ − zᵀφ)²,   π(z) = (M − 1) / (C(M, |z|) · |z| · (M − |z|)),

with infinite weight on z = 0 (φ₀ = v(∅) = f(x̂)) and z = 1 (Σφ = f(x) − f(x̂)). Coalitions are
drawn so that π is already the sampling law (Captum's ``KernelShap``): the size k ∈ 1…M−1 with
p(k) ∝ (M − 1)/(k(M − k)), then a uniform subset of size k; every drawn row then has weight 1.

- ``sampling="captum"``: independent rows; ``"paired"``: rows 2j, 2j+1 are a coalition and its
  complement (p(k) = p(M − k), so each row keeps the law; Covert & Lee, AISTATS 2021, show the
  pairs cut the variance). Derived and tested: paired rows give the exact Shapley values of any
  game whose interactions have order ≤ 2 (flipping z flips s = 2z − 1, so the linear terms fit
  the game's odd part, linear for such games, and the intercept its even part). shap's
  ``KernelExplainer`` also enumerates whole coalition sizes when the budget covers them: not
  done here (the rows stay an i.i.d. stream of pairs).
- ``efficiency="exact"``: the two infinite weights as constraints, φ₀ = f(x̂) and Σφ = f(x) − f(x̂)
  (shap's ``KernelExplainer``), solved from the Lagrange (KKT) system; ``"captum"``: Captum's
  fit, the rows z = 1 and z = 0 with weight 10⁶ and a free intercept (ordinary weighted least
  squares, sklearn ``LinearRegression``).

The random rows stream in blocks of 64 (block k from its own seeded generator, on the host: the
design is tiny, and both array backends see the same rows); only the sufficient statistics
Σ z zᵀ, Σ z, Σ z y are kept, so memory is flat in the sample count. The rows z = 1 and z = 0 are
the forwards on x and x̂ the base class makes anyway: ``n_samples`` counts them, as Captum does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.blackbox.base import Attribution, BlackBoxExplainer, Call
from onnxplain.blackbox.sampling import host_rng
from onnxplain.blackbox.segments import Segmenter, check_segmentation, groups_of_equal
from onnxplain.checks import check_choice, check_positive_int
from onnxplain.errors import InvalidInputError

CAPTUM_ANCHOR_WEIGHT = 1e6
"""Captum's weight of the rows z = 1 and z = 0 (``KernelShap.inf_weight``)."""
GRID_CELLS = 8
SLIC_SEGMENTS = 64


def size_distribution(m: int) -> np.ndarray:
    """p(k) for k = 1 … M−1: ∝ (M − 1)/(k(M − k)), the Shapley kernel summed over the C(M, k)
    coalitions of size k."""
    k = np.arange(1, m, dtype=np.float64)
    p = (m - 1) / (k * (m - k))
    return p / p.sum()


def draw_coalitions(rng: np.random.Generator, n: int, m: int, paired: bool) -> np.ndarray:
    """n coalitions z ∈ {0,1}^M (float64 rows): size k ~ p(k), then a uniform size-k subset
    (the k smallest of M uniforms); ``paired``: row 2j + 1 is the complement of row 2j (an odd
    n ends with an unpaired row; blocks hold 64 rows, so pairs never straddle two blocks)."""
    draws = -(-n // 2) if paired else n
    cdf = np.cumsum(size_distribution(m))
    sizes = 1 + np.minimum(np.searchsorted(cdf, rng.random(draws), side="right"), m - 2)  # (n',)
    ranks = rng.random((draws, m)).argsort(axis=1).argsort(axis=1)  # a uniform permutation per row
    z = ranks < sizes[:, None]  # (n', M)
    if paired:
        z = np.stack([z, ~z], axis=1).reshape(-1, m)[:n]
    return z.astype(np.float64)


def solve_exact(gram: np.ndarray, zsum: np.ndarray, zy: np.ndarray, f_x: float, f_b: float) -> np.ndarray:
    """min Σ (y − f_b − zᵀφ)² subject to 1ᵀφ = f_x − f_b, from Σzzᵀ, Σz and Σzy: the KKT system

        [Σzzᵀ 1; 1ᵀ 0] [φ; λ] = [Σz(y − f_b); f_x − f_b]

    (least-squares minimum-norm solution when fewer distinct rows than segments were drawn)."""
    m = len(zsum)
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, :m] = gram
    kkt[:m, m] = kkt[m, :m] = 1.0
    rhs = np.append(zy - f_b * zsum, f_x - f_b)
    return np.linalg.lstsq(kkt, rhs, rcond=None)[0][:m]


def solve_weighted(
    gram: np.ndarray, zsum: np.ndarray, zy: np.ndarray, count: float, ysum: float, f_x: float, f_b: float,
    anchor: float = CAPTUM_ANCHOR_WEIGHT,
) -> tuple[np.ndarray, float]:
    """Captum's fit: weighted least squares with intercept over the drawn rows (weight 1) and the
    rows z = 1 (y = f_x) and z = 0 (y = f_b) with weight ``anchor``; returns (φ, intercept).

    Centred normal equations (sklearn's ``LinearRegression`` with ``sample_weight``): with
    W = Σw, z̄ = Σwz/W, ȳ = Σwy/W, φ solves (Σwzzᵀ − W z̄z̄ᵀ) φ = Σwzy − W z̄ ȳ (minimum norm)."""
    ones = np.ones_like(zsum)
    w = count + 2.0 * anchor
    zbar = (zsum + anchor * ones) / w
    ybar = (ysum + anchor * (f_x + f_b)) / w
    cov = gram + anchor * np.outer(ones, ones) - w * np.outer(zbar, zbar)
    rhs = zy + anchor * f_x * ones - w * zbar * ybar
    phi = np.linalg.lstsq(cov, rhs, rcond=None)[0]
    return phi, float(ybar - zbar @ phi)


class _ShapStats:
    """Σzzᵀ, Σz, n over the drawn rows of M segments (shared by the explicands ``members``, which
    see the same rows) and Σzy, Σy per member."""

    def __init__(self, m: int, members: list[int]) -> None:
        self.m, self.members = m, members
        self.gram = np.zeros((m, m))
        self.zsum = np.zeros(m)
        self.count = 0.0
        self.zy = np.zeros((len(members), m))
        self.ysum = np.zeros(len(members))

    def add(self, z: np.ndarray, y: np.ndarray) -> None:
        """One block: rows z (n, M) and the (B, n) scores of every explicand."""
        self.gram += z.T @ z
        self.zsum += z.sum(axis=0)
        self.count += len(z)
        for j, i in enumerate(self.members):  # one member at a time: sums independent of the group
            self.zy[j] += y[i] @ z
            self.ysum[j] += y[i].sum()


class KernelShapQueries:
    """The coalition queries of one explanation (z ↦ x on the segments of z, x̂ elsewhere) and
    the streamed statistics. Explicands with the same segmentation share the pixel masks; those
    with the same segment count M share the rows."""

    def __init__(self, shap: KernelSHAP, call: Call, segs: list[tuple[np.ndarray, int]]) -> None:
        ops = call.ops
        assert call.baseline is not None
        self.shap, self.ops, self.n = shap, ops, shap.n_samples - 2
        self.hw = call.x.shape[2:]
        ks = [k for _, k in segs]
        self.masks = [(ops.index(segs[g[0]][0].ravel()), ks[g[0]], g) for g in groups_of_equal(s for s, _ in segs)]
        self.stats = [_ShapStats(ks[g[0]], g) for g in groups_of_equal(ks)]
        self.x = ops.asarray(call.x)
        self.baseline = ops.asarray(call.baseline)

    def draw(self, k: int, lo: int, hi: int) -> dict[int, np.ndarray]:
        return {st.m: self.shap.coalitions(st.m, k, hi - lo) for st in self.stats}

    def write(self, rows: dict[int, np.ndarray], out: Any) -> None:
        h, w = self.hw
        for pixels, m, group in self.masks:
            z = self.ops.asarray(rows[m], np.float32)
            on = self.ops.take_columns(z, pixels).reshape(-1, 1, h, w) > 0.5  # pixel's segment in z
            for i in group:
                self.ops.select_into(on, self.x[i], self.baseline[i], out[i])

    def consume(self, rows: dict[int, np.ndarray], scores: np.ndarray) -> None:
        for st in self.stats:
            st.add(rows[st.m], scores)


class KernelSHAP(BlackBoxExplainer):
    """KernelSHAP: Shapley values of superpixels by the Shapley-kernel least squares.

    Args:
        n_samples: model evaluations per explicand, the rows z = 1 (x) and z = 0 (x̂) included
            (Captum's ``n_samples``); the other n_samples − 2 are drawn coalitions.
        segmentation: ``"auto"`` (SLIC with 64 segments for colour images with both sides ≥ 64,
            else an 8×8 grid), ``"quickshift"``, ``"slic"``, ``"grid"`` or integer labels (H,W)
            or (B,H,W); see :mod:`onnxplain.blackbox.segments`. At least 2 segments.
        n_segments: grid cells (rounded to a square) or SLIC's target count.
        baseline: x̂ on the absent segments: ``"blur"`` (default, the toolkit's Gaussian blur of
            the explicand), ``"zero"``, a constant or an array (C,), (C,H,W), (B,C,H,W).
        sampling: ``"paired"`` (default: coalitions with their complements) or ``"captum"``
            (independent rows, Captum's sampler).
        efficiency: ``"exact"`` (default: φ₀ = f(x̂) and Σφ = f(x) − f(x̂) as constraints) or
            ``"captum"`` (rows z = 1, z = 0 weighted 10⁶, free intercept: Σφ ≈ f(x) − f(x̂)).
        paint: ``"spread"`` (default: φ_k shared evenly by the C·|S_k| elements of segment k,
            so the map sums to Σφ) or ``"copy"`` (φ_k on every element, as Captum and LIME).
        seed, queries_per_call, array_backend: see :class:`~onnxplain.blackbox.base.BlackBoxExplainer`;
            explicands with the same segment count see the same coalitions.

    No L1 selection (shap ≥ 0.47 keeps only 10 segments by default; here every segment gets its
    value). ``diagnostics``: ``n_segments``, ``intercept`` (φ₀).
    """

    name = "kernelshap"
    budget_param = "n_samples"
    uses_baseline = True
    scores_baseline = True

    def __init__(
        self,
        n_samples: int = 2048,
        segmentation: Any = "auto",
        n_segments: int | None = None,
        baseline: Any = "blur",
        sampling: str = "paired",
        efficiency: str = "exact",
        paint: str = "spread",
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        super().__init__(seed=seed, queries_per_call=queries_per_call, array_backend=array_backend)
        self.n_samples = check_positive_int("n_samples", n_samples, 3)
        self.segmentation = check_segmentation(segmentation)
        self.n_segments = None if n_segments is None else check_positive_int("n_segments", n_segments, 2)
        self.segmenter = Segmenter(self.segmentation, self.n_segments, self.seed, "slic", GRID_CELLS, SLIC_SEGMENTS)
        self.baseline = Baseline.parse(baseline)
        self.sampling = check_choice("sampling", sampling, ("paired", "captum"))
        self.efficiency = check_choice("efficiency", efficiency, ("exact", "captum"))
        self.paint = check_choice("paint", paint, ("spread", "copy"))

    def coalitions(self, n_segments: int, block: int, n: int) -> np.ndarray:
        """The ``n`` coalitions (float64 0/1 rows of length M) of block ``block`` for M =
        ``n_segments``: rows 64·block … of the n_samples − 2 drawn ones, from the seed alone."""
        rng = host_rng(self.seed, "kernelshap", block, n_segments)
        return draw_coalitions(rng, n, n_segments, self.sampling == "paired")

    def segment(self, image: np.ndarray, index: int = 0) -> tuple[np.ndarray, int]:
        """Superpixels of one (C,H,W) explicand: labels (H,W) in 0..M−1 and M."""
        return self.segmenter.segment(image, index)

    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        return self.n_samples  # x, x̂ and n_samples − 2 coalitions

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "n_segments": self.n_segments,
            "sampling": self.sampling,
            "efficiency": self.efficiency,
            "paint": self.paint,
        }

    def _setup(self, batch: np.ndarray) -> list[tuple[np.ndarray, int]]:
        segs = [self.segment(batch[i], i) for i in range(len(batch))]
        for i, (_, m) in enumerate(segs):
            if m < 2:
                raise InvalidInputError(
                    f"KernelSHAP needs at least 2 segments; explicand {i} has {m} "
                    f"({self.segmenter.describe(*batch.shape[1:])}; use the 'grid' segmentation or finer labels)."
                )
        return segs

    def _attribute(self, call: Call) -> Attribution:
        segs: list[tuple[np.ndarray, int]] = call.setup
        queries = KernelShapQueries(self, call, segs)
        call.run(queries)
        assert call.baseline_scores is not None
        b, c, h, w = call.x.shape
        attributions = np.empty(call.x.shape, np.float32)
        intercept = np.empty(b)
        for st in queries.stats:
            for j, i in enumerate(st.members):
                f_x, f_b = float(call.scores[i]), float(call.baseline_scores[i])
                if self.efficiency == "exact":
                    phi, intercept[i] = solve_exact(st.gram, st.zsum, st.zy[j], f_x, f_b), f_b
                else:
                    phi, intercept[i] = solve_weighted(st.gram, st.zsum, st.zy[j], st.count, st.ysum[j], f_x, f_b)
                labels = segs[i][0]
                if self.paint == "spread":  # φ_k / (C·|S_k|) on each element of segment k
                    phi = phi / (c * np.bincount(labels.ravel(), minlength=st.m))
                attributions[i] = phi[labels][None]
        return Attribution(
            attributions,
            params={"segmentation": self.segmenter.describe(c, h, w)},
            diagnostics={"n_segments": np.asarray([m for _, m in segs], np.int64), "intercept": intercept},
        )
