"""AttEXplore, attribution by model-parameter exploration (Zhu et al., ICLR 2024)."""

from __future__ import annotations

import weakref
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from onnxplain.checks import (
    check_bounds,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_seed,
)
from onnxplain.errors import InvalidInputError
from onnxplain.gradients._common import (
    GradientMethod,
    MemoryFormat,
    Output,
    Result,
    Runner,
    torch_generator,
)
from onnxplain.gradients.dct import spectrum_transform

InputDiversity = bool | Literal["auto", "pad", "resize"]

_ACCEPTS_LARGER: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[object, ...], bool]] = weakref.WeakKeyDictionary()
"""Per module: whether it accepted the padded input-diversity canvas, by (C,H,W, rate)."""
_STREAM = 21  # SeedSequence spawn key of AttEXplore's draws


def ti_kernel(size: int, nsig: float = 3.0) -> np.ndarray:
    """The translation-invariance kernel: outer product of the N(0,1) pdf at linspace(−nsig, nsig,
    size), normalised to sum 1 (the reference's ``gkern(7, 3)``: σ = 1 pixel for size 7)."""
    t = np.linspace(-nsig, nsig, size)
    pdf = np.exp(-0.5 * t**2)
    k = np.outer(pdf, pdf)
    return k / k.sum()


class AttEXplore(GradientMethod):
    """AttEXplore: the integrated-gradient path of a frequency-augmented MI-FGSM (SSA + DI + TI).

    With x₀ = x, G₋₁ = 0, α = ε/T, y the explained class, L(z) = CE(h(f(z)), y) per sample
    (``output="probs"``: cross-entropy applied to the probabilities, as the LA repository's copy),
    for t = 0 … T−1 (paper Eq. 3–6, ``reference/whitebox-methods.md`` §3):

        x̃ₙ = IDCT(DCT(x_t + ξₙ) ⊙ Mₙ),  ξₙ ~ N(0, σ²),  Mₙ ~ U[1−ρ, 1+ρ]   (Eq. 4), n = 1 … N
        g_t = (1/N) Σₙ ∂L(DI(x̃ₙ))/∂x̃ₙ                                          (Eq. 6)
        g_t ← TI ∗ g_t  (7×7 Gaussian, depthwise);  g_t ← g_t / mean|g_t|  (per sample, L1-mean)
        G_t = μ·G_{t−1} + g_t
        x_{t+1} = clamp(x + clamp(x_t − α·sign(G_t) − x, −ε, ε), 0, 1)            (Eq. 5)
        A = −Σ_t (x_{t+1} − x_t) ⊙ G_t                                           (Eq. 3)

    Sign convention of the reference: the step *descends* the CE loss (it raises p_y), and each
    coordinate of x_{t+1} − x_t is −α·sign(G_t) or a clipped part of it, so A = Σ_t c_t·|G_t| ≥ 0
    everywhere: reference maps are non-negative. The gradient is taken with respect to the
    transformed image x̃ₙ (SSA convention), and the stored gradient is the momentum G_t.

    ε: the paper (§5.1) states ε = 48/255, but both public codes run 16/255 (no 48 appears in
    either repository), which is the default here; pass ``epsilon=48/255`` for the paper's value.

    Input diversity (DI, p = 0.5, rate 1.15): x̃ is resized (bilinear) to r × r with
    r ∈ [H, ⌊1.15·H⌋) and zero-padded at a random offset to ⌊1.15·H⌋ (``"pad"``, the reference;
    the model must accept the larger size), or padded and resized back to H × W (``"resize"``,
    the LA repository's ``DIResize``, for fixed-size models); ``False`` turns it off. ``"auto"``
    (the default) decides once per model and image size: ``"pad"`` when one forward on the
    larger canvas succeeds, else ``"resize"``; the choice is recorded in ``params``.

    Randomness: the draws of step t (ξ, M and the DI geometry for n = 1 … N) come from
    ``SeedSequence(seed, spawn_key=(21, t))`` and are shared by every explicand, so an
    explicand's map depends neither on the rest of the batch nor on ``batch_size`` (the
    reference draws per batch, one DI geometry per call). The reference also computes one more
    N-sample gradient at x_T and discards it; it is skipped here.

    Args:
        epsilon: ε, the L∞ radius of the path around x (16/255).
        n_approx: N, approximate features per step (20).
        steps: T, iterations (10).
        momentum: μ (1.0).
        rho: ρ, half-width of the spectral mask's range (0.5).
        noise_sigma: σ of ξ in input units (16/255).
        input_diversity: ``"auto"``, ``True``/``"pad"``, ``"resize"`` or ``False``.
        ti_size: side of the TI kernel (7); 1 turns TI off.
        seed: seed of all draws.
        bounds: the input range the path is clamped to; x must lie inside.
        output, device, batch_size, memory_format: see :class:`~onnxplain.gradients.saliency.Saliency`.

    Cost per explicand: T·N forward and backward passes (200 with the defaults).
    """

    name = "attexplore"
    budget_param = "steps"
    seeded = True

    def __init__(
        self,
        epsilon: float = 16 / 255,
        n_approx: int = 20,
        steps: int = 10,
        momentum: float = 1.0,
        rho: float = 0.5,
        noise_sigma: float = 16 / 255,
        input_diversity: InputDiversity = "auto",
        seed: int = 0,
        *,
        ti_size: int = 7,
        di_prob: float = 0.5,
        di_rate: float = 1.15,
        bounds: tuple[float, float] = (0.0, 1.0),
        output: Output = "probs",
        device: str | None = None,
        batch_size: int | None = None,
        memory_format: MemoryFormat = "auto",
    ) -> None:
        super().__init__(output=output, device=device, batch_size=batch_size, memory_format=memory_format)
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.n_approx = check_positive_int("n_approx", n_approx)
        self.steps = check_positive_int("steps", steps)
        self.momentum = check_nonnegative_float("momentum", momentum)
        self.rho = check_nonnegative_float("rho", rho)
        if self.rho > 1:
            raise InvalidInputError(f"rho must lie in [0, 1], got {rho}.")
        self.noise_sigma = check_nonnegative_float("noise_sigma", noise_sigma)
        if isinstance(input_diversity, (bool, np.bool_)):
            input_diversity = "pad" if input_diversity else False
        elif not (isinstance(input_diversity, str) and input_diversity in ("auto", "pad", "resize")):
            raise InvalidInputError(
                f"input_diversity must be 'auto', True, False, 'pad' or 'resize', not {input_diversity!r}."
            )
        self.input_diversity = input_diversity
        self.ti_size = check_positive_int("ti_size", ti_size)
        if self.ti_size % 2 == 0:
            raise InvalidInputError(f"ti_size must be odd, got {ti_size}.")
        self.di_prob = check_nonnegative_float("di_prob", di_prob)
        if self.di_prob > 1:
            raise InvalidInputError(f"di_prob must lie in [0, 1], got {di_prob}.")
        self.di_rate = check_nonnegative_float("di_rate", di_rate)
        if self.di_rate <= 1:
            raise InvalidInputError(f"di_rate must be greater than 1, got {di_rate}.")
        self.seed = check_seed(seed)
        self.bounds = check_bounds(bounds)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "epsilon": self.epsilon,
            "n_approx": self.n_approx,
            "steps": self.steps,
            "momentum": self.momentum,
            "rho": self.rho,
            "noise_sigma": self.noise_sigma,
            "input_diversity": self.input_diversity,
            "ti_size": self.ti_size,
            "di_prob": self.di_prob,
            "di_rate": self.di_rate,
            "seed": self.seed,
            "bounds": list(self.bounds),
        }

    # -- the random draws of one step ----------------------------------------------------------
    def draws(
        self, t: int, shape: tuple[int, int, int], device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int, int, int] | None]]:
        """``(ξ (N,C,H,W), M (N,C,H,W), DI geometry per n)`` of step t, shared by all explicands.

        A DI geometry is ``(rh, rw, top, left)``: resize to rh × rw, place at (top, left) in the
        ⌊rate·H⌋ × ⌊rate·W⌋ zero canvas; ``None`` where DI is not applied.
        """
        seq = np.random.SeedSequence(self.seed, spawn_key=(_STREAM, t))
        gen = torch_generator(seq, device)
        n = self.n_approx
        xi = torch.randn((n, *shape), generator=gen, device=device, dtype=dtype) * self.noise_sigma
        mask = (
            1 - self.rho + 2 * self.rho * torch.rand((n, *shape), generator=gen, device=device, dtype=dtype)
        )
        geoms: list[tuple[int, int, int, int] | None] = [None] * n
        if self.input_diversity:
            rng = np.random.default_rng(seq.spawn(1)[0])
            h, w = shape[1:]
            hr, wr = self._canvas(h, w)
            for i in range(n):
                applied = rng.random() < self.di_prob
                rh = int(rng.integers(h, hr))
                rw = rh if (h == w) else int(rng.integers(w, wr))
                top = int(rng.integers(0, hr - rh))
                left = int(rng.integers(0, wr - rw))
                geoms[i] = (rh, rw, top, left) if applied else None
        return xi, mask, geoms

    def _canvas(self, h: int, w: int) -> tuple[int, int]:
        return max(int(h * self.di_rate), h + 1), max(int(w * self.di_rate), w + 1)

    def _diversity_mode(self, run: Runner, x: torch.Tensor) -> str | bool:
        """``self.input_diversity``, with ``"auto"`` resolved for this model and image size.

        One forward (counted) of a zero canvas of the padded size, remembered per module.
        """
        if self.input_diversity != "auto":
            return self.input_diversity
        key = (tuple(x.shape[1:]), self.di_rate)
        known = _ACCEPTS_LARGER.setdefault(run.model, {})
        if key not in known:
            hr, wr = self._canvas(*x.shape[-2:])
            try:
                with torch.no_grad():
                    run._raw(x.new_zeros((1, x.shape[1], hr, wr)))
                known[key] = True
            except (RuntimeError, InvalidInputError):
                known[key] = False
        return "pad" if known[key] else "resize"

    def _diversity(self, z: torch.Tensor, geom: tuple[int, int, int, int], mode: str | bool) -> torch.Tensor:
        h, w = z.shape[-2:]
        hr, wr = self._canvas(h, w)
        rh, rw, top, left = geom
        z = F.interpolate(z, size=(rh, rw), mode="bilinear", align_corners=False)
        z = F.pad(z, (left, wr - rw - left, top, hr - rh - top), value=0.0)
        if mode == "resize":
            z = F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False)
        return z

    # -- the method ------------------------------------------------------------------------------
    def _loss_rows(self, run: Runner, z: torch.Tensor, y: torch.Tensor, mode: str | bool) -> torch.Tensor:
        try:
            _, head = run.forward(z)
        except RuntimeError as exc:
            if mode == "pad":
                raise InvalidInputError(
                    f"the model failed on the {tuple(z.shape[-2:])} input-diversity images ({exc}); "
                    "use input_diversity='resize' for a model that needs a fixed input size."
                ) from exc
            raise
        return F.cross_entropy(head, y, reduction="none")

    def _gradient(
        self, run: Runner, xt: torch.Tensor, y: torch.Tensor, t: int, kernel: torch.Tensor | None, mode: str | bool
    ) -> torch.Tensor:
        """g_t for a chunk of explicands: N-sample mean, TI-smoothed, L1-mean normalised."""
        b, shape = xt.shape[0], tuple(xt.shape[1:])
        xi, mask, geoms = self.draws(t, shape, xt.device, xt.dtype)  # type: ignore[arg-type]
        per = max(1, run.batch_size // b)
        total = torch.zeros_like(xt)
        for n0 in range(0, self.n_approx, per):
            n1 = min(n0 + per, self.n_approx)
            with torch.no_grad():
                if (
                    self.rho == 0 and self.noise_sigma == 0
                ):  # the transform is the identity: skip its rounding
                    xs = xt[None].expand(n1 - n0, *xt.shape).clone()
                else:
                    xs = spectrum_transform(xt[None], xi[n0:n1, None], mask[n0:n1, None])
            xs = xs.reshape(-1, *shape).requires_grad_(True)  # rows n-major: (n0, all b), (n0+1, all b) …
            plain = [i for i in range(n0, n1) if geoms[i] is None]
            losses = []
            if plain:
                rows = torch.cat([xs[(i - n0) * b : (i - n0 + 1) * b] for i in plain])
                losses.append(self._loss_rows(run, rows, y.repeat(len(plain)), mode))
            diverse = [i for i in range(n0, n1) if geoms[i] is not None]
            if diverse:
                rows = torch.cat(
                    [self._diversity(xs[(i - n0) * b : (i - n0 + 1) * b], geoms[i], mode) for i in diverse]  # type: ignore[arg-type]
                )
                losses.append(self._loss_rows(run, rows, y.repeat(len(diverse)), mode))
            g = run.grad_of(torch.cat(losses), xs, xs.shape[0])
            total += g.view(n1 - n0, b, *shape).sum(dim=0)
        g = total / self.n_approx
        if kernel is not None:
            g = F.conv2d(g, kernel, padding=self.ti_size // 2, groups=shape[0])
        scale = g.abs().flatten(1).mean(dim=1).clamp_min(torch.finfo(g.dtype).tiny)
        return g / scale.view(-1, *([1] * len(shape)))

    def _attribute(self, run: Runner, x: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor) -> Result:
        lo, hi = self.bounds
        eps, alpha = self.epsilon, self.epsilon / self.steps
        kernel = None
        if self.ti_size > 1:
            k = torch.as_tensor(ti_kernel(self.ti_size), dtype=x.dtype, device=x.device)
            kernel = k.expand(x.shape[1], 1, self.ti_size, self.ti_size).contiguous()
        mode = self._diversity_mode(run, x)
        out = torch.zeros_like(x)
        for i0 in range(0, x.shape[0], run.batch_size):
            x0, y = x[i0 : i0 + run.batch_size], targets[i0 : i0 + run.batch_size]
            xt, momentum_g = x0.clone(), torch.zeros_like(x0)
            acc = torch.zeros_like(x0)
            for t in range(self.steps):
                momentum_g = self.momentum * momentum_g + self._gradient(run, xt, y, t, kernel, mode)
                nxt = torch.clamp(
                    x0 + torch.clamp(xt - alpha * torch.sign(momentum_g) - x0, -eps, eps), lo, hi
                )
                acc -= (nxt - xt) * momentum_g
                xt = nxt
            out[i0 : i0 + run.batch_size] = acc
        return Result(out, params={"alpha": alpha, "input_diversity": mode})
