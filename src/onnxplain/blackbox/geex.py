"""GEEX and GE: gradient-like explanations from queries (Cai & Wunder, ICML 2024).

Gaussian search distribution ``z = c + δ``, ``δ ~ N(0, s²I)`` (s = ``sigma``, the standard
deviation actually applied). The score-function (log-likelihood) gradient estimator of
Cai & Wunder Eq. 1 is then ``η(c) = (1/n) Σ_i f(c + δ_i) δ_i / s²``, unbiased for the gradient
of the Gaussian-smoothed ``f`` at ``c``.

- **GE** (the paper's "GE" row, §3.1) is ``η(x)``: a gradient estimate at the explicand.
- **GEEX** (Eq. 3) merges the path integral of Integrated Gradients with that estimator: every
  query sits at its own point ``x̂ + α(x − x̂)`` of the straight path from the baseline ``x̂``,

      ξ = (x − x̂) ∘ (1/n*) Σ_i f(x̂ + α_i (x − x̂) + δ_i) δ_i / s²,

  so ``Σ ξ → f(x) − f(x̂)`` (completeness, Thm 3.2) up to Monte-Carlo error and the smoothing
  of ``f`` by the noise.

Variance reduction: mirrored pairs ``(+δ, −δ)`` sharing one α (Brockhoff et al. 2010) cancel the
``f(c)·δ`` term whose mean is zero but whose variance is huge; α is stratified over [0, 1].
The perturbation set depends only on the seed (see :mod:`onnxplain.blackbox.sampling`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from onnxplain.blackbox._common import (
    BaselineSpec,
    Clock,
    Explicands,
    build_explanation,
    check_baseline_spec,
    check_batch_size,
    check_budget,
    check_choice,
    check_positive_float,
    check_positive_int,
    check_seed,
    describe_baseline,
    prepare,
    query_explicands,
    resolve_baseline,
    stream,
    target_scores,
)
from onnxplain.blackbox.sampling import (
    Ops,
    filter_operator,
    gaussian_taps,
    path_alphas,
    select_backend,
    smoothing_variance,
)
from onnxplain.errors import InvalidInputError
from onnxplain.explanation import Explanation
from onnxplain.models.base import QueryModel, Target

Alpha = Literal["stratified", "uniform", "reference"]
NoiseChannels = Literal["independent", "shared"]
Scale = Literal["exact", "reference"]


def _check_smoothing(smoothing: Any) -> tuple[int, float] | None:
    if smoothing is None:
        return None
    try:
        size, sigma = smoothing
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"smoothing must be None or (kernel_size, sigma), got {smoothing!r}.") from exc
    size = check_positive_int("the smoothing kernel size", size)
    if size % 2 == 0:
        raise InvalidInputError(f"the smoothing kernel size must be odd, got {size}.")
    return size, check_positive_float("the smoothing sigma", sigma)


class _GaussianEstimator:
    """The streaming estimator ``Σ f(c_i + δ_i) δ_i`` shared by GEEX (on the path) and GE (at x)."""

    method = ""
    _path = True

    def __init__(
        self,
        n_queries: int,
        sigma: float,
        smoothing: tuple[int, float] | None,
        mirror: bool,
        alpha: Alpha,
        noise_channels: NoiseChannels,
        seed: int,
        batch_size: int | None,
        backend: str,
        scale: Scale,
    ) -> None:
        if not isinstance(mirror, bool):
            raise InvalidInputError(f"mirror must be True or False, got {mirror!r}.")
        self.mirror = mirror
        self.n_queries = check_positive_int("n_queries", n_queries, 2 if mirror else 1)
        self.sigma = check_positive_float("sigma", sigma)
        self.smoothing = _check_smoothing(smoothing)
        self.alpha = check_choice("alpha", alpha, ("stratified", "uniform", "reference"))
        self.noise_channels = check_choice("noise_channels", noise_channels, ("independent", "shared"))
        self.seed = check_seed(seed)
        self.batch_size = check_batch_size(batch_size)
        self.backend = check_choice("backend", backend, ("auto", "numpy", "torch"))
        self.scale = check_choice("scale", scale, ("exact", "reference"))

    # -- derived quantities ---------------------------------------------------------------------
    @property
    def n_perturbations(self) -> int:
        """Perturbed forwards per explicand: with mirror pairs an odd budget drops its last query.

        An unpaired query would reintroduce the ``f(c)·δ`` term that mirroring cancels (its
        variance dwarfs the signal), so ``n_queries = 2k + 1`` makes ``2k`` perturbed forwards;
        the forwards actually made are what ``Explanation.n_queries`` reports.
        """
        return self.n_queries - (self.n_queries % 2) if self.mirror else self.n_queries

    @property
    def applied_std(self) -> float:
        """Standard deviation of the noise actually added (σ, or σ/2 in the reference's convention)."""
        return self.sigma / 2 if self.scale == "reference" else self.sigma

    def _variance(self, height: int, width: int) -> np.ndarray | float:
        """What ``Σ f δ / n`` is divided by: Var(δ) per pixel (exact) or the reference's σ³."""
        if self.scale == "reference":
            return self.sigma**3
        if self.smoothing is None:
            return self.applied_std**2
        return self.applied_std**2 * smoothing_variance(height, width, *self.smoothing)

    def _params(self) -> dict[str, Any]:
        return {
            "n_queries": self.n_queries,
            "n_perturbations": self.n_perturbations,
            "sigma": self.sigma,
            "applied_std": self.applied_std,
            "smoothing": None if self.smoothing is None else list(self.smoothing),
            "mirror": self.mirror,
            "noise_channels": self.noise_channels,
            "scale": self.scale,
            "seed": self.seed,
        }

    # -- the estimator ----------------------------------------------------------------------------
    def _estimate(
        self, model: QueryModel, ops: Ops, exp: Explicands, start: np.ndarray, step: np.ndarray | None
    ) -> np.ndarray:
        """``Σ_i f(start + α_i·step + δ_i) δ_i / (n·Var δ)`` per explicand, as (B, C', H, W) numpy.

        ``step`` None means no path (GE): every query is centred at ``start``.
        """
        b, c, h, w = exp.x.shape
        noise_c = 1 if self.noise_channels == "shared" else c
        n = self.n_perturbations
        pairs = n // 2 if self.mirror else n
        std = self.applied_std
        ops_start = ops.asarray(start)[:, None]
        zero_start = not np.any(start)  # x̂ = 0 adds nothing (the default baseline)
        ops_step = None if step is None else ops.asarray(step)[:, None]
        if self.smoothing is not None:
            taps = gaussian_taps(*self.smoothing)
            taps = taps / np.linalg.norm(taps)
            op_h = ops.asarray(filter_operator(h, taps))
            op_wt = ops.asarray(filter_operator(w, taps).T)
        acc = ops.zeros64((b, noise_c * h * w))
        stream_name = "geex" if self._path else "ge"

        def make_block(k: int, lo: int, hi: int) -> tuple[Any, Any, int]:
            m = (hi - lo) // 2 if self.mirror else hi - lo
            first = lo // 2 if self.mirror else lo
            rng = ops.rng(self.seed, stream_name, k)
            u = ops.uniform(rng, m)
            delta = ops.normal(rng, (m, noise_c, h, w))
            if self.smoothing is not None:
                delta = op_h @ delta @ op_wt
            delta *= std
            alpha = path_alphas(self.alpha, u, np.arange(first, first + m), pairs)
            return delta, ops.asarray(alpha.reshape(1, m, 1, 1, 1)), m

        def write_queries(block: tuple[Any, Any, int], out: Any) -> None:
            # centre ± δ, the centre x̂ + α·(x − x̂) written once into the + half (three passes
            # over the queries for a zero baseline: the centre, the − half, δ added in place)
            delta, alpha, m = block
            plus = out[:, :m]
            centre = ops_start
            if ops_step is not None:
                ops.mul_into(alpha, ops_step, plus)
                if not zero_start:
                    plus += ops_start
                centre = plus
            if self.mirror:
                ops.sub_into(centre, delta, out[:, m:])
            ops.add_into(centre, delta, plus)

        def consume(block: tuple[Any, Any, int], scores: np.ndarray) -> None:
            delta, _, m = block
            weight = ops.asarray(scores[:, :m] - scores[:, m:] if self.mirror else scores)
            flat = delta.reshape(m, -1)
            for i in range(b):  # one product per explicand: same BLAS path whatever B is
                acc[i] += weight[i] @ flat

        stream(ops, model, n, exp, self.batch_size, make_block, write_queries, consume)
        g = ops.to_numpy(acc).reshape(b, noise_c, h, w) / (n * np.asarray(self._variance(h, w)))
        return g


class GEEX(_GaussianEstimator):
    """GEEX (Cai & Wunder 2024, Eq. 3): path-integrated gradient estimates from queries alone.

    ``ξ = (x − x̂) ∘ (1/n*) Σ_i f(x̂ + α_i(x − x̂) + δ_i) δ_i / Var(δ)``; ``Σξ ≈ f(x) − f(x̂)``.

    Args:
        n_queries: perturbed forwards per explicand (n*). With ``mirror=True`` they come in
            ``n_queries // 2`` pairs and an odd budget drops its last query (see
            :attr:`n_perturbations`); ``Explanation.n_queries`` also counts the two forwards on
            x and x̂ per explicand.
        sigma: standard deviation of the Gaussian noise actually applied, in the model's input
            units. Default 0.1, chosen for models taking [0,1] pixels. **σ–completeness
            trade-off**: GEEX integrates the gradient of f smoothed by N(0, σ²), not of f, so a
            large σ breaks completeness (Σξ = f(x) − f(x̂)) and drifts from IG; a small σ keeps
            it in expectation but leaves less smoothing, so the maps get noisier and rank pixels
            worse. Measured on the demo MNIST CNN, 100 held-out digits, 5,000 queries, two
            seeds (``benchmarks/blackbox_speed.py``): the mean relative completeness gap
            |Σξ − Δf|/|Δf| is smallest at σ ≈ 0.1–0.15 (0.12) and grows on both sides — Monte-
            Carlo noise below (0.13 at σ = 0.03), smoothing bias above (0.17 at 0.2, 0.24 at
            0.3); the deletion AOPC rises from 0.865 at σ = 0.03 to 0.89–0.90 from σ = 0.1 on
            (seed spread ±0.01). More queries shrink the gap (0.08 at 10k, 0.06 at 20k). The
            paper's σ = 1.0 on MNIST is in normalised units with the reference's σ/2 convention,
            i.e. ≈ 0.15 in [0,1] pixels; for a model taking normalised input, scale σ by its std.
        baseline: x̂: ``"zero"``, a constant, ``"blur"`` (Gaussian blur of the explicand,
            kernel 31, σ 5, torch-style reflect padding, as the reference) or an array of shape
            (C,H,W) or (B,C,H,W).
        smoothing: ``None`` or ``(kernel_size, sigma)``, e.g. ``(5, 0.7)`` as the paper on
            ImageNet: the noise is convolved with a Gaussian kernel divided by its Frobenius
            norm (§3.3), which keeps the per-pixel variance (exactly, in the interior; the
            border's variance, raised by the reflected taps, is divided out exactly too). The
            estimate is then a spatially blurred gradient: completeness no longer holds.
        mirror: mirrored pairs (+δ, −δ) sharing one α (strongly recommended).
        alpha: ``"stratified"`` (α_k = (k + u_k)/K over the K pairs), ``"uniform"`` (iid U[0,1])
            or ``"reference"`` (the reference code's α_k = k/(n*−1), covering only [0, ½)).
        noise_channels: ``"independent"`` noise per channel (ξ_c estimates ∂f/∂x_c·Δx_c) or
            ``"shared"``: one noise plane added to every channel, as the reference (then ξ_c
            estimates (Σ_c' ∂f/∂x_c')·Δx_c; same thing for greyscale).
        seed: seeds every perturbation; the same seed gives the same perturbation set for
            every explicand and bitwise-identical maps whatever ``batch_size``.
        batch_size: queries per model call (all explicands together); default: the model's
            preferred batch size.
        backend: ``"numpy"`` (host), ``"torch"`` (queries built by torch on ``model.device``
            and passed to the model as device tensors) or ``"auto"`` (torch for CUDA models).
        scale: ``"exact"`` (divide by the variance applied) or ``"reference"`` (the reference
            code: applied std σ/2 but divided by σ², i.e. ξ is scaled by 1/(4σ)).

    No clipping: queries may leave the valid pixel range, as in the paper.
    """

    method = "geex"
    _path = True

    def __init__(
        self,
        n_queries: int = 5000,
        sigma: float = 0.1,
        baseline: BaselineSpec = "zero",
        smoothing: tuple[int, float] | None = None,
        mirror: bool = True,
        alpha: Alpha = "stratified",
        noise_channels: NoiseChannels = "independent",
        seed: int = 0,
        batch_size: int | None = None,
        backend: str = "auto",
        scale: Scale = "exact",
    ) -> None:
        super().__init__(
            n_queries, sigma, smoothing, mirror, alpha, noise_channels, seed, batch_size, backend, scale
        )
        self.baseline = check_baseline_spec(baseline)

    @classmethod
    def reference(cls, n_queries: int = 5000, sigma: float = 1.0, **kwargs: Any) -> GEEX:
        """The reference code's conventions (caiy0220/GEEX HEAD), for side-by-side checks.

        Noise std σ/2 divided by σ² (``scale="reference"``), one noise plane shared by all
        channels, pair k at α = k/(n*−1) (only the half of the path next to the baseline),
        mirrored pairs, n* total forwards. Defaults σ = 1.0 and a zero baseline as its MNIST
        example; anything can be overridden by keyword.
        """
        settings: dict[str, Any] = {
            "alpha": "reference",
            "noise_channels": "shared",
            "scale": "reference",
            "mirror": True,
        }
        settings.update(kwargs)
        return cls(n_queries=n_queries, sigma=sigma, **settings)

    def explain(self, model: QueryModel, x: Any, target: Target = None) -> Explanation:
        """Explain ``x`` (C,H,W) or a batch (B,C,H,W) for ``target`` (None = top class on x)."""
        clock = Clock(model)
        ops = select_backend(self.backend, model)
        batch, single = prepare(model, x)
        baseline = resolve_baseline(self.baseline, batch)  # shape errors before any query
        n_total = len(batch) * (self.n_perturbations + 2)
        check_budget(model, n_total)
        exp = query_explicands(model, batch, single, target)
        base_scores = target_scores(model, baseline, exp.targets)[:, 0]
        delta_x = exp.x - baseline
        g = self._estimate(model, ops, exp, baseline, delta_x)
        params = self._params()
        params.update({"baseline": describe_baseline(self.baseline), "alpha": self.alpha, "backend": ops.name})
        return build_explanation(
            self.method, exp, (delta_x * g).astype(np.float32), params, clock, n_total, base_scores
        )


class GE(_GaussianEstimator):
    """GE: the plain gradient estimate at x (Cai & Wunder 2024, Eq. 1; the paper's "GE" row).

    ``η(x) = (1/n) Σ_i f(x + δ_i) δ_i / Var(δ)`` → ∇(f * N(0, σ²))(x): the gradient of the
    σ-smoothed ``f``. No path and no ×(x − x̂): it suffers the saturation GEEX was made to avoid,
    and there is no baseline score. Arguments as :class:`GEEX` (without ``baseline``/``alpha``).
    """

    method = "ge"
    _path = False

    def __init__(
        self,
        n_queries: int = 5000,
        sigma: float = 0.1,
        smoothing: tuple[int, float] | None = None,
        mirror: bool = True,
        noise_channels: NoiseChannels = "independent",
        seed: int = 0,
        batch_size: int | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            n_queries, sigma, smoothing, mirror, "uniform", noise_channels, seed, batch_size, backend, "exact"
        )

    def explain(self, model: QueryModel, x: Any, target: Target = None) -> Explanation:
        """Gradient estimate at ``x`` (C,H,W) or a batch (B,C,H,W) for ``target``."""
        clock = Clock(model)
        ops = select_backend(self.backend, model)
        batch, single = prepare(model, x)
        n_total = len(batch) * (self.n_perturbations + 1)
        check_budget(model, n_total)
        exp = query_explicands(model, batch, single, target)
        g = self._estimate(model, ops, exp, exp.x, None)
        attributions = np.ascontiguousarray(np.broadcast_to(g, exp.x.shape), dtype=np.float32)
        params = self._params()
        params["backend"] = ops.name
        return build_explanation(self.method, exp, attributions, params, clock, n_total)
