"""GEFA: general feature attribution by proxy gradient estimation (Cai, Ardoin & Wunder, ICML 2025).

Each pixel i gets a presence probability α_i (the proxy variable). A query keeps the pixels of a
random mask m and replaces the others by the baseline x̂, one mask plane shared by the C
channels: z(m) = m ⊙ x + (1 − m) ⊙ x̂. G(α) = E_{m∼α} f_t(z(m)) is the multilinear extension of
the pixel game v(S) = f_t(z(1_S)); GEFA estimates ∂G/∂α_i on the diagonal α = γ·1 with the
Bernoulli score function and averages over γ ∈ (0, 1):

    φ̂_i = (1/N) Σ_n (y_n − β̂ h_n) · w_i(m_n, α_n),     w_i(m, α) = (m_i − α) / (α(1 − α)),

with y_n = f_t(z(m_n)), the control variate h_n = |m_n|/d − ½ and β̂ = Ĉov(y, h)/V̂ar(h) over
all N queries. With i.i.d. Bernoulli(α) masks and α ∼ U(0, 1) (no control variate),
E[φ̂_i] = ∫₀¹ ∂_iG(γ1) dγ, the Shapley value of the pixel game (Owen 1972), so
Σ_i φ̂_i ≈ f_t(x) − f_t(x̂). With the reference's smoothed, rank-transformed masks (the image
default) E[y·w_i | α] = E[y | m_i = 1] − E[y | m_i = 0] under a spatially correlated mask field: a
Shapley-like presence contrast, not the pixel Shapley value.

Antithetic pairs: (m, α) is paired with (1 − m, 1 − α); w(1 − m, 1 − α) = −w(m, α) and
h(1 − m) = −h(m), so a pair adds (y − y′)·w(m, α) to Σ y·w and 2h·w(m, α) to Σ h·w.

Streaming: per block, S_yw = Σ y·w and S_hw = Σ h·w (H·W each; S_hw is shared by all explicands
as the masks are) and the scalars Σy, Σh, Σyh, Σh² accumulate; at the end
β̂ = (Σyh − ΣyΣh/N)/(Σh² − (Σh)²/N) and φ̂ = (S_yw − β̂·S_hw)/N. Memory does not grow with N.

The control variate's mean: with i.i.d. masks E[h·w_i | α] = 1/d ≠ 0, so the reference's raw
term shifts every φ̂_i by ≈ −β̂/d (Σφ̂ ≈ 0: ranks survive, completeness does not).
``cv_mean="restore"`` (default) adds back β̂·μ̄, with μ̄ the mean over the drawn α_n of the
term's known expectation E[h·w_i | α] (:meth:`~onnxplain.blackbox.gefa_masks.GefaMasks.control_mean`:
exactly 1/d for i.i.d. masks, O(1/(d²α(1 − α))) for rank-transformed ones), which makes the
control variate unbiased; ``"reference"`` keeps the raw term. (The sample mean over pixels of
β̂·h·w_i would also remove the shift, but it is heavy-tailed near α → 0, 1.)

Completeness: Σ_i w_i(m, α) = (|m| − αd)/(α(1 − α)). With i.i.d. masks Σφ̂ ≈ f_t(x) − f_t(x̂).
With rank-transformed masks (the image default, as the reference) |m| = αd ± 1, so Σφ̂ ≈ 0
whatever the control variate: the map is mean-centred (for a linear f, E[φ̂_i] ≈ (d·a_i − Σa)/(d − 1)
with a_i the pixel's Shapley value) and ``Explanation.completeness_gap`` is ≈ −(f(x) − f(x̂)).

The map is per pixel; ``attributions`` repeats φ̂/C over the C channels, so that summing the
(C,H,W) array gives Σ_i φ̂_i (completeness is checked on the sum, as for GEEX); multiply a
channel by C to get the reference's (1,H,W) map. Where the reference code (caiy0220/GEFA @85b5ca8)
departs from the paper, the departure is a named option (see :mod:`~onnxplain.blackbox.gefa_masks`
for the masks) and :meth:`GEFA.preset` ``("reference")`` gathers them. Not reproduced: its CUDA
hard-coding, target 0 read as "no target" and the (H, H) size of non-square unsmoothed inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.blackbox.base import Attribution, BlackBoxExplainer, Call
from onnxplain.blackbox.geex import check_smoothing
from onnxplain.blackbox.gefa_masks import (
    AlphaLaw,
    GefaMasks,
    MaskBlock,
    RankTransform,
    Remainder,
    auto_smoothing,
)
from onnxplain.checks import check_bool, check_choice, check_positive_int
from onnxplain.errors import InvalidInputError

AUTO = "auto"
REJECT_ABOVE = 1000
"""``reject_extremes="auto"`` rejects empty/full masks only for more pixels than this (§10 of the
frontier notes): there it matches the reference's mask law at no measurable cost; on small inputs
rejection is a bias."""


def _check_auto_bool(name: str, value: Any) -> bool | str:
    if isinstance(value, str) and value == AUTO:
        return AUTO
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise InvalidInputError(f"{name} must be True, False or 'auto', got {value!r}.")


class GefaQueries:
    """The antithetic queries of one explanation and the running sums of the estimator."""

    def __init__(self, n: int, call: Call, masks: GefaMasks) -> None:
        ops = call.ops
        assert call.baseline is not None
        b, _, h, w = call.x.shape
        self.n, self.ops, self.masks, self.image = n, ops, masks, (h, w)
        self.x = ops.asarray(call.x)[:, None]  # (B, 1, C, H, W)
        self.start = ops.asarray(call.baseline)[:, None]  # x̂, (B, 1, C, H, W)
        self.step = ops.asarray(call.x - call.baseline)[:, None]  # x − x̂
        self.zero_start = not np.any(call.baseline)
        self.s_yw = ops.zeros64((b, h * w))  # Σ_n y_n w(m_n, α_n)           (B, d)
        self.s_hw = ops.zeros64((h * w,))  # Σ_n h_n w(m_n, α_n)             (d,)
        self.sum_y, self.sum_yh = np.zeros(b), np.zeros(b)  # Σ y, Σ y·h  (B,)
        self.sum_h = self.sum_h2 = 0.0  # Σ h, Σ h²
        self.sum_mu = 0.0  # Σ_n E[h_n w_i(m_n, α_n) | α_n], the control variate's known mean
        self.count = self.redrawn = 0

    def draw(self, k: int, lo: int, hi: int) -> MaskBlock:
        return self.masks.block(self.ops, k, lo // 2, (hi - lo) // 2)

    def write(self, block: MaskBlock, out: Any) -> None:
        """Pairs: x̂ + m ⊙ (x − x̂) in the first half, x − m ⊙ (x − x̂) = x̂ + (1 − m) ⊙ (x − x̂) in the second."""
        p = len(block.alpha)
        m = block.masks.reshape(1, p, 1, *self.image)  # (1, P, 1, H, W), broadcast over B and C
        plus = out[:, :p]
        self.ops.mul_into(m, self.step, plus)
        self.ops.sub_into(self.x, plus, out[:, p:])
        if not self.zero_start:  # a zero baseline adds nothing
            plus += self.start

    def consume(self, block: MaskBlock, scores: np.ndarray) -> None:
        ops, p, d = self.ops, len(block.alpha), self.s_hw.shape[0]
        alpha = block.alpha  # (P,)
        h = block.sizes / d - 0.5  # h(m) = |m|/d − ½; h(1 − m) = −h(m)        (P,)
        hs = np.concatenate([h, -h])  # (2P,)
        self.sum_y += scores.sum(axis=1)  # row by row: the same sums whatever B is
        self.sum_yh += (scores * hs).sum(axis=1)
        self.sum_h += float(hs.sum())
        self.sum_h2 += float(hs @ hs)
        self.sum_mu += 2.0 * float(self.masks.control_mean(alpha).sum())
        self.count += 2 * p
        self.redrawn += block.redrawn
        a = ops.asarray(alpha[:, None], np.float64)
        w = ops.to64(block.masks)  # a new float64 array, updated in place below
        w -= a
        w *= 1.0 / (a * (1.0 - a))  # w(m, α) = (m − α)/(α(1 − α))                       (P, d)
        diff = ops.asarray(scores[:, :p] - scores[:, p:], np.float64)  # y(m) − y(1 − m)     (B, P)
        for i in range(len(diff)):  # one product per explicand: the same sums whatever B is
            self.s_yw[i] += diff[i] @ w
        self.s_hw += ops.asarray(2.0 * h, np.float64) @ w  # h·w is equal for both members of a pair

    def beta(self) -> np.ndarray:
        """β̂ = Ĉov(y, h)/V̂ar(h) per explicand (0 when h never varies), (B,) float64."""
        n = self.count
        var = self.sum_h2 - self.sum_h**2 / n
        cov = self.sum_yh - self.sum_y * self.sum_h / n
        return cov / var if var > 0 else np.zeros_like(cov)


class GEFA(BlackBoxExplainer):
    """GEFA (Cai, Ardoin & Wunder 2025): proxy-gradient feature attribution from masked queries.

    ``φ̂_i = (1/N) Σ_n (y_n − β̂ h_n)(m_ni − α_n)/(α_n(1 − α_n))`` over N queries in antithetic pairs.

    Args:
        n_queries: N, masked forwards per explicand, in N // 2 antithetic pairs (an odd budget
            drops its last query); ``Explanation.n_queries`` adds f(x) and f(x̂). Default 4000.
        baseline: x̂, what a hidden pixel becomes: ``"blur"`` (default, Gaussian 31, σ 5, as the
            reference's ImageNet runs), ``"zero"``, a constant, ``"blur(k,σ)"`` or an array.
        smoothing: Gaussian ``(kernel, sigma)`` of the mask noise field, ``None`` (i.i.d. noise) or
            ``"auto"``: the reference ImageNet kernel 51/σ 11 at 299² scaled to min(H, W)
            (224² → 39/8.24, 28² → 5/1.03; none below 3 taps or when ``rank_transform="none"``).
        rank_transform: ``"exact"`` (default: rank r ↦ (r + U)/d, so |m| = αd ± 1 with mean αd),
            ``"reference"`` (r/(d−1) + U/d: mean α(d−1)) or ``"none"`` (i.i.d. Bernoulli(α) masks;
            refused with smoothing).
        alpha: ``"stratified"`` (default: α_j = (j + u_j)/P over the P pairs, unbiased) or
            ``"grid"`` (the reference: nodes k/(g+1), k = 1…g, a biased quadrature).
        grid_points: g, nodes of the grid (11, as the reference).
        grid_remainder: nodes of the pairs past the last full grid cycle: ``"cycle"`` (j mod g)
            or ``"random"`` (a seeded random subset, as the reference's unseeded ``randperm``).
        reject_extremes: redraw empty and full masks (the reference always does): ``"auto"``
            (default) only for d > 1000 pixels, where it changes nothing measurable; on small
            inputs it is a bias (3-pixel AND game: 0 instead of ⅓).
        control_variate: subtract β̂·h (default on). The reference's raw term is unbiased only
            with rank-transformed masks (where h is nearly a function of α); with the restored mean
            it is unbiased for i.i.d. masks too, and it cancels most of the α-trend of y that
            dominates the variance.
        cv_mean: ``"restore"`` (default: add back the control variate's known per-sample mean,
            so Σφ̂ is unchanged by it) or ``"reference"`` (the raw term: a −β̂/d shift under
            i.i.d. masks).
        seed, queries_per_call, array_backend: see :class:`~onnxplain.blackbox.base.BlackBoxExplainer`.

    Resolved values of the ``"auto"`` settings and β̂ (``diagnostics["cv_beta"]``) are recorded
    in every Explanation. The map is divided by C and repeated over the channels.
    """

    name = "gefa"
    uses_baseline = True
    scores_baseline = True

    def __init__(
        self,
        n_queries: int = 4000,
        baseline: Any = "blur",
        smoothing: tuple[int, float] | None | str = AUTO,
        rank_transform: RankTransform = "exact",
        alpha: AlphaLaw = "stratified",
        grid_points: int = 11,
        grid_remainder: Remainder = "cycle",
        reject_extremes: bool | str = AUTO,
        control_variate: bool = True,
        cv_mean: str = "restore",
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        super().__init__(seed=seed, queries_per_call=queries_per_call, array_backend=array_backend)
        self.n_queries = check_positive_int("n_queries", n_queries, 2)
        self.baseline = Baseline.parse(baseline)
        self.smoothing = AUTO if isinstance(smoothing, str) and smoothing == AUTO else check_smoothing(smoothing)
        self.rank_transform = check_choice("rank_transform", rank_transform, ("exact", "reference", "none"))
        if self.rank_transform == "none" and isinstance(self.smoothing, tuple):
            raise InvalidInputError(
                "smoothing needs a rank transform: a blurred uniform field thresholded at α does not keep "
                "each pixel with probability α; use the 'exact' rank transform or no smoothing."
            )
        self.alpha = check_choice("alpha", alpha, ("stratified", "grid"))
        self.grid_points = check_positive_int("grid_points", grid_points)
        self.grid_remainder = check_choice("grid_remainder", grid_remainder, ("cycle", "random"))
        self.reject_extremes = _check_auto_bool("reject_extremes", reject_extremes)
        self.control_variate = check_bool("control_variate", control_variate)
        self.cv_mean = check_choice("cv_mean", cv_mean, ("restore", "reference"))

    PRESETS: dict[str, dict[str, Any]] = {
        "reference": {
            "baseline": "zero",
            "smoothing": (31, 5.0),
            "rank_transform": "reference",
            "alpha": "grid",
            "grid_points": 11,
            "grid_remainder": "random",
            "reject_extremes": True,
            "control_variate": True,
            "cv_mean": "reference",
        },
    }
    """Named settings. ``"reference"``: the conventions of the reference class ``GEFA4Image``
    (caiy0220/GEFA @85b5ca8) with its defaults (zero baseline, smoothing 31/σ 5, 11-node grid,
    rank transform r/(d−1) + U/d, rejection, raw control variate). ``"imagenet"``: the same with
    its ImageNet config (``img_config.yaml``: blur baseline, smoothing 51/σ 11 at 299², 5000 queries)."""
    PRESETS["imagenet"] = {**PRESETS["reference"], "baseline": "blur", "smoothing": (51, 11.0)}

    @classmethod
    def preset(cls, name: str, n_queries: int = 5000, **overrides: Any) -> GEFA:
        """A GEFA with the named settings of :attr:`PRESETS`; any of them can be overridden."""
        settings = dict(cls.PRESETS[check_choice("preset", name, tuple(cls.PRESETS))])
        settings.update(overrides)
        return cls(n_queries=n_queries, **settings)

    @property
    def n_perturbations(self) -> int:
        """Masked forwards per explicand: whole antithetic pairs (an odd budget drops one)."""
        return self.n_queries - self.n_queries % 2

    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        return self.n_perturbations + 2  # f(x), f(x̂) and the masked queries

    def resolve(self, height: int, width: int) -> dict[str, Any]:
        """The settings used on H×W inputs, ``"auto"`` values resolved."""
        d = height * width
        smoothing = self.smoothing
        if smoothing == AUTO:
            smoothing = None if self.rank_transform == "none" else auto_smoothing(height, width)
        reject = d > REJECT_ABOVE if self.reject_extremes == AUTO else self.reject_extremes
        return {"smoothing": smoothing, "reject_extremes": reject}

    def params(self) -> dict[str, Any]:
        smoothing = self.smoothing if self.smoothing in (AUTO, None) else list(self.smoothing)
        return {
            **super().params(),
            "n_perturbations": self.n_perturbations,
            "smoothing": smoothing,
            "rank_transform": self.rank_transform,
            "alpha": self.alpha,
            "grid_points": self.grid_points,
            "grid_remainder": self.grid_remainder,
            "reject_extremes": self.reject_extremes,
            "control_variate": self.control_variate,
            "cv_mean": self.cv_mean,
            "map": "per pixel, divided by C and repeated over the channels",
        }

    def masks(self, height: int, width: int) -> GefaMasks:
        """The mask law this explainer uses on H×W inputs (public, so tests can re-draw its masks)."""
        settings = self.resolve(height, width)
        if settings["reject_extremes"] and height * width < 2:
            raise InvalidInputError("reject_extremes needs at least 2 pixels: a 1-pixel mask is always empty or full.")
        return GefaMasks(
            height,
            width,
            self.n_perturbations // 2,
            smoothing=settings["smoothing"],
            rank=self.rank_transform,
            alpha=self.alpha,
            grid_points=self.grid_points,
            remainder=self.grid_remainder,
            reject=settings["reject_extremes"],
            seed=self.seed,
        )

    def _setup(self, batch: np.ndarray) -> GefaMasks:
        return self.masks(*batch.shape[2:])

    def _attribute(self, call: Call) -> Attribution:
        b, c, h, w = call.x.shape
        settings = self.resolve(h, w)
        queries = GefaQueries(self.n_perturbations, call, call.setup)
        call.run(queries)
        n = queries.count
        beta = queries.beta() if self.control_variate else np.zeros(b)  # β̂      (B,)
        s_yw = call.ops.to_numpy(queries.s_yw)  # Σ y·w                                    (B, d)
        s_hw = call.ops.to_numpy(queries.s_hw)  # Σ h·w                                    (d,)
        # φ̂ = (1/N) Σ_n (y_n − β̂ h_n) w(m_n, α_n)  [+ β̂ μ̄, the control variate's known mean]   (B, d)
        phi = (s_yw - beta[:, None] * s_hw[None]) / n
        if self.cv_mean == "restore":
            phi += (beta * queries.sum_mu / n)[:, None]
        per_channel = (phi / c).reshape(b, 1, h, w)
        smoothing = settings["smoothing"]
        params = {**settings, "smoothing": None if smoothing is None else list(smoothing)}
        params["n_pairs"] = n // 2
        return Attribution(
            np.broadcast_to(per_channel, call.x.shape),
            params=params,
            diagnostics={"cv_beta": beta, "redrawn_masks": queries.redrawn},
        )
