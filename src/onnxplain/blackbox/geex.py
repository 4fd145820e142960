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
The reference code's conventions (α range, σ/2 scale, shared noise) are named options, and
:meth:`GEEX.preset` gathers them: ``"reference"`` and the paper's settings.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.blackbox.base import Attribution, BlackBoxExplainer, Call
from onnxplain.blackbox.path_noise import PathQueries, auto_grid, spread
from onnxplain.blackbox.pixel_noise import GaussianQueries
from onnxplain.checks import (
    check_bool,
    check_choice,
    check_odd_kernel,
    check_positive_float,
    check_positive_int,
)
from onnxplain.errors import InvalidInputError
from onnxplain.filters import smoothing_variance
from onnxplain.models.base import QueryModel, input_quantum

Alpha = Literal["stratified", "uniform", "reference"]
Noise = Literal["auto", "pixel", "path"]
PIXEL_SIGMA = 0.1
"""Pixel noise's default σ in [0,1] pixels (``benchmarks/README.md``, "GEEX σ: completeness and deletion AOPC")."""
PATH_SIGMA = 0.25
"""Path noise's default σ in units of the path (``benchmarks/README.md``, "GEEX on photos")."""
AUTO_PATH_MIN_SIDE = 64
"""``noise="auto"`` takes path noise for explicands whose sides are at least this many pixels."""
NoiseChannels = Literal["independent", "shared"]
Scale = Literal["exact", "reference"]


def check_smoothing(smoothing: Any) -> tuple[int, float] | None:
    """``None`` or a Gaussian kernel ``(odd size, sigma)`` for the noise."""
    if smoothing is None:
        return None
    try:
        size, sigma = smoothing
    except (TypeError, ValueError):
        raise InvalidInputError(f"smoothing must be None or (kernel_size, sigma), got {smoothing!r}.") from None
    return check_odd_kernel("smoothing", size, sigma)


class _GaussianEstimator(BlackBoxExplainer):
    """The streaming estimator ``(1/n) Σ f(c + δ_i) δ_i / Var(δ)`` shared by GEEX and GE."""

    def __init__(
        self,
        n_queries: int,
        sigma: float,
        smoothing: tuple[int, float] | None,
        mirror: bool,
        alpha: Alpha,
        noise_channels: NoiseChannels,
        scale: Scale,
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        super().__init__(seed=seed, queries_per_call=queries_per_call, array_backend=array_backend)
        self.mirror = check_bool("mirror", mirror)
        self.n_queries = check_positive_int("n_queries", n_queries, 2 if self.mirror else 1)
        self.sigma = check_positive_float("sigma", sigma)
        self.smoothing = check_smoothing(smoothing)
        self.alpha = check_choice("alpha", alpha, ("stratified", "uniform", "reference"))
        self.noise_channels = check_choice("noise_channels", noise_channels, ("independent", "shared"))
        self.scale = check_choice("scale", scale, ("exact", "reference"))

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

    def noise_variance(self, height: int, width: int) -> np.ndarray | float:
        """What ``Σ f δ / n`` is divided by: Var(δ) per pixel (exact) or the reference's σ³."""
        if self.scale == "reference":
            return self.sigma**3
        if self.smoothing is None:
            return self.applied_std**2
        return self.applied_std**2 * smoothing_variance(height, width, *self.smoothing)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "n_perturbations": self.n_perturbations,
            "sigma": self.sigma,
            "applied_std": self.applied_std,
            "smoothing": None if self.smoothing is None else list(self.smoothing),
            "mirror": self.mirror,
            "noise_channels": self.noise_channels,
            "scale": self.scale,
        }

    def quantum_diagnostics(self, model: QueryModel, height: int, width: int) -> dict[str, str]:
        """``{"warning": ...}`` (and a UserWarning) when the noise is finer than the model's input
        quantum (e.g. 1/255 for a uint8 model): most of it then rounds away before the model."""
        quantum = input_quantum(model)
        if quantum <= 0:
            return {}
        smallest = self.applied_std
        if self.smoothing is not None:
            smallest *= float(np.sqrt(smoothing_variance(height, width, *self.smoothing).min()))
        if smallest >= quantum:
            return {}
        message = (
            f"{self.name}: the noise's standard deviation ({smallest:.3g} in [0,1] pixels) is smaller than the "
            f"model's input quantum ({quantum:.3g}, one grey level of a uint8 input), so most perturbations "
            f"round to no change; use sigma ≥ {quantum:.3g}."
        )
        warnings.warn(message, UserWarning, stacklevel=4)
        return {"warning": message}

    def mean_score_noise(self, call: Call, centre: np.ndarray, step: np.ndarray | None) -> np.ndarray:
        """``η̄ = (1/n) Σ_i f(centre + α_i·step + δ_i) δ_i / Var(δ)``, (B, C', H, W) float64."""
        queries = GaussianQueries(self, call, centre, step)
        call.run(queries)
        h, w = call.x.shape[2:]
        return queries.total() / (queries.n * np.asarray(self.noise_variance(h, w)))


class GEEX(_GaussianEstimator):
    """GEEX (Cai & Wunder 2024, Eq. 3): path-integrated gradient estimates from queries alone.

    ``ξ = (x − x̂) ∘ (1/n*) Σ_i f(x̂ + α_i(x − x̂) + δ_i) δ_i / Var(δ)``; ``Σξ ≈ f(x) − f(x̂)``.

    Two Gaussian search distributions (``noise``):

    - ``"pixel"`` (the paper's): δ ~ N(0, σ²) per pixel and channel in the model's input units,
      optionally smoothed (``smoothing``);
    - ``"path"``: δ = σ·(Uη) ∘ (x − x̂), noise on each pixel's position along the path drawn per
      cell of a ``grid`` × ``grid`` grid, the cell's estimate spread over its pixels ∝ |x − x̂|
      (:mod:`onnxplain.blackbox.path_noise`). Its error grows with the number of cells, not of
      pixels: legible, faithful maps of photos within a few thousand queries.

    ``noise="auto"`` (default) resolves by the explicand's size: path noise on a blurred
    baseline for images whose sides are ≥ 64 pixels, the paper's pixel noise on a zero baseline
    for smaller ones (digits); ``params`` records what was used. Measurements behind the
    defaults: ``benchmarks/README.md``, "GEEX on photos". The paper's settings are presets:
    ``GEEX.preset("paper-mnist")``, ``GEEX.preset("paper-imagenet")``.

    Args:
        n_queries: perturbed forwards per explicand (n*). With ``mirror=True`` they come in
            ``n_queries // 2`` pairs and an odd budget drops its last query (see
            :attr:`n_perturbations`); ``Explanation.n_queries`` also counts the two forwards on
            x and x̂ per explicand.
        sigma: the noise's standard deviation: in the model's input units for pixel noise
            (default 0.1 for [0,1] pixels; the trade-off is in ``benchmarks/README.md``, "GEEX σ:
            completeness and deletion AOPC"), in units of the path for path noise (default 0.25:
            a cell moves by about a quarter of its way from x̂ to x). ``None`` takes the default.
        baseline: x̂: ``"auto"`` (``"blur"`` with path noise, ``"zero"`` with pixel noise),
            ``"zero"``, a constant, ``"blur"`` (Gaussian blur of the explicand, kernel 31, σ 5, as
            the reference), ``"blur(k,σ)"`` or an array (C,), (C,H,W) or (B,C,H,W).
        noise: ``"auto"``, ``"pixel"`` or ``"path"`` (above).
        grid: path noise's cells per side, or ``"auto"`` (one per 16 pixels: 14 on 224×224).
        smoothing: pixel noise only: ``None`` or ``(kernel_size, sigma)``: the noise is
            convolved with a Gaussian kernel divided by its Frobenius norm (§3.3), which keeps
            the per-pixel variance. The estimate is then a spatially blurred gradient.
        mirror: mirrored pairs (+δ, −δ) sharing one α (strongly recommended).
        alpha: ``"stratified"`` (α_k = (k + u_k)/K over the K pairs), ``"uniform"`` (iid U[0,1])
            or ``"reference"`` (the reference code's α_k = k/(n*−1), covering only [0, ½)).
        noise_channels: pixel noise only: ``"independent"`` noise per channel or ``"shared"``:
            one noise plane added to every channel, as the reference.
        scale: pixel noise only: ``"exact"`` (divide by the variance applied) or ``"reference"``
            (the reference code: applied std σ/2 but divided by σ², i.e. ξ scaled by 1/(4σ)).
        seed, queries_per_call, array_backend: see :class:`~onnxplain.blackbox.base.BlackBoxExplainer`.

    No clipping: queries may leave the valid pixel range, as in the paper.
    """

    name = "geex"
    uses_baseline = True
    scores_baseline = True

    def __init__(
        self,
        n_queries: int = 5000,
        sigma: float | None = None,
        baseline: Any = "auto",
        noise: Noise = "auto",
        grid: int | Literal["auto"] = "auto",
        smoothing: tuple[int, float] | None = None,
        mirror: bool = True,
        alpha: Alpha = "stratified",
        noise_channels: NoiseChannels = "independent",
        scale: Scale = "exact",
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        common = {"seed": seed, "queries_per_call": queries_per_call, "array_backend": array_backend}
        self.noise = check_choice("noise", noise, ("auto", "pixel", "path"))
        self.sigma_setting = None if sigma is None else check_positive_float("sigma", sigma)
        super().__init__(n_queries, sigma or 0.1, smoothing, mirror, alpha, noise_channels, scale, **common)
        self.grid = grid if grid == "auto" else check_positive_int("grid", grid, 2)
        self.baseline_setting = "auto" if isinstance(baseline, str) and baseline == "auto" else Baseline.parse(baseline)
        if self.noise == "path" and (smoothing is not None or scale != "exact" or noise_channels != "independent"):
            raise InvalidInputError(
                "smoothing, scale and noise_channels shape pixel noise; path noise takes none of them."
            )

    PRESETS: dict[str, dict[str, Any]] = {
        "reference": {"noise": "pixel", "baseline": "zero", "sigma": 1.0, "alpha": "reference",
                      "noise_channels": "shared", "scale": "reference"},
        "paper-mnist": {"noise": "pixel", "baseline": 0.1307, "sigma": 0.154},
        "paper-imagenet": {"noise": "pixel", "baseline": "blur", "sigma": 0.3 * 0.226, "smoothing": (5, 0.7)},
    }
    """Named settings. ``"reference"``: the reference code's conventions (caiy0220/GEEX HEAD):
    noise std σ/2 divided by σ², one noise plane shared by all channels, pair k at α = k/(n*−1),
    σ = 1.0 and a zero baseline as its MNIST example. ``"paper-mnist"``: the paper's MNIST
    settings in [0,1] pixels (Table 1: σ = 1.0 in normalised units with the reference's σ/2, i.e.
    0.154; the normalised zero baseline, pixel 0.1307). ``"paper-imagenet"``: its ImageNet
    settings (blurred baseline, noise smoothed 5/0.7, σ = 0.3 in normalised units, i.e. 0.3 ×
    the ImageNet std ≈ 0.068 in [0,1] pixels)."""

    @classmethod
    def preset(cls, name: str, n_queries: int = 5000, **overrides: Any) -> GEEX:
        """A GEEX with the named settings of :attr:`PRESETS`; any of them can be overridden."""
        settings = dict(cls.PRESETS[check_choice("preset", name, tuple(cls.PRESETS))])
        settings.update(overrides)
        return cls(n_queries=n_queries, **settings)

    @classmethod
    def reference(cls, n_queries: int = 5000, sigma: float = 1.0, **kwargs: Any) -> GEEX:
        """``GEEX.preset("reference", ...)``: the reference code's conventions, for side-by-side checks."""
        return cls.preset("reference", n_queries, sigma=sigma, **kwargs)

    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        return self.n_perturbations + 2  # f(x), f(x̂) and the perturbed queries

    def resolved_noise(self, height: int, width: int) -> str:
        """``"path"`` or ``"pixel"`` for explicands of this size (``noise="auto"``: path from 64 pixels)."""
        if self.noise != "auto":
            return self.noise
        return "path" if min(height, width) >= AUTO_PATH_MIN_SIDE else "pixel"

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha": self.alpha, "noise": self.noise}

    def describe_baseline(self) -> str | float:
        return "auto" if self.baseline_setting == "auto" else self.baseline_setting.describe()

    def baseline_for(self, batch: np.ndarray) -> Baseline:
        """``baseline="auto"``: the blurred explicand under path noise, zero under pixel noise."""
        if self.baseline_setting != "auto":
            return self.baseline_setting
        return Baseline.parse("blur" if self.resolved_noise(*batch.shape[2:]) == "path" else "zero")

    def _setup(self, batch: np.ndarray) -> str:
        """Resolve the noise for this call's explicands, and σ with it (``self.sigma`` then holds
        the σ of the latest call, as ``params`` records)."""
        kind = self.resolved_noise(*batch.shape[2:])
        self.sigma = self.sigma_setting or (PATH_SIGMA if kind == "path" else PIXEL_SIGMA)
        return kind

    def _attribute(self, call: Call) -> Attribution:
        x, x_hat = call.x, call.baseline
        assert x_hat is not None
        resolved = {"noise": call.setup, "sigma": self.sigma, "baseline": self.baseline_for(x).describe()}
        if call.setup == "path":
            return self._attribute_path(call, resolved)
        resolved["applied_std"] = self.applied_std
        diagnostics = self.quantum_diagnostics(call.model, *x.shape[2:])
        # η̄ = (1/n*) Σ_i f(x̂ + α_i (x − x̂) + δ_i) δ_i / Var(δ)          (B, C', H, W)
        eta = self.mean_score_noise(call, centre=x_hat, step=x - x_hat)
        # Eq. 3: ξ = (x − x̂) ∘ η̄                                         (B, C, H, W)
        return Attribution((x - x_hat) * eta, params=resolved, diagnostics=diagnostics)

    def _attribute_path(self, call: Call, resolved: dict[str, Any]) -> Attribution:
        assert call.baseline is not None
        h, w = call.x.shape[2:]
        grid = auto_grid(h, w) if self.grid == "auto" else min(self.grid, h, w)
        queries = PathQueries(self, call, grid)
        call.run(queries)
        # S_c = Σ_i (f(z_i⁺) − f(z_i⁻)) η_ic / (n·2σ) → Σ_{i∈c} (x_i − x̂_i) ∂f_σ/∂x_i     (B, g, g)
        cells = queries.cells()
        # each cell's share spread over its pixels and channels ∝ |x − x̂|                 (B, C, H, W)
        attributions = spread(cells, call.x - call.baseline, grid)
        resolved.update(grid=grid, applied_std=None, smoothing=None, noise_channels=None, scale=None)
        return Attribution(attributions, params=resolved)


class GE(_GaussianEstimator):
    """GE: the plain gradient estimate at x (Cai & Wunder 2024, Eq. 1; the paper's "GE" row).

    ``η(x) = (1/n) Σ_i f(x + δ_i) δ_i / Var(δ)`` → ∇(f * N(0, σ²))(x): the gradient of the
    σ-smoothed ``f``. No path and no ×(x − x̂): it suffers the saturation GEEX was made to avoid,
    and there is no baseline score. Arguments as :class:`GEEX` (without ``baseline``/``alpha``).
    """

    name = "ge"

    def __init__(
        self,
        n_queries: int = 5000,
        sigma: float = 0.1,
        smoothing: tuple[int, float] | None = None,
        mirror: bool = True,
        noise_channels: NoiseChannels = "independent",
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        common = {"seed": seed, "queries_per_call": queries_per_call, "array_backend": array_backend}
        super().__init__(n_queries, sigma, smoothing, mirror, "uniform", noise_channels, "exact", **common)

    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        return self.n_perturbations + 1  # f(x) and the perturbed queries

    def _attribute(self, call: Call) -> Attribution:
        diagnostics = self.quantum_diagnostics(call.model, *call.x.shape[2:])
        # η(x) = (1/n) Σ_i f(x + δ_i) δ_i / Var(δ), repeated over channels if the noise is shared
        eta = self.mean_score_noise(call, centre=call.x, step=None)
        return Attribution(np.broadcast_to(eta, call.x.shape), diagnostics=diagnostics)
