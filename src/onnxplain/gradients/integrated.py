"""Integrated Gradients (Sundararajan et al. 2017) with three quadrature rules."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from onnxplain.baselines import Baseline
from onnxplain.checks import check_choice, check_positive_int
from onnxplain.gradients._common import (
    GradientMethod,
    MemoryFormat,
    Output,
    Result,
    Runner,
    gather,
    sum_groups,
)

Rule = Literal["trapezoid", "riemann_right", "gausslegendre"]
RULES: tuple[str, ...] = ("trapezoid", "riemann_right", "gausslegendre")


def quadrature(rule: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes α_k ∈ [0,1] and weights w_k (Σ w_k = 1) of ``rule`` with ``steps`` nodes, float64.

    - ``"trapezoid"``: α_k = k/(m−1), w = 1/(m−1) with both end weights halved (exact for a
      gradient linear in α). Captum's ``"riemann_trapezoid"`` uses the same nodes but weights
      1/m (ends halved), which sum to (m−1)/m: its maps are ours times (m−1)/m.
    - ``"riemann_right"``: α_k = k/m, k = 1…m, w = 1/m (the review's Eq. 12).
    - ``"gausslegendre"``: Gauss–Legendre nodes and weights mapped from [−1,1] to [0,1]
      (Captum's default rule).
    """
    if rule == "trapezoid":
        if steps < 2:
            raise ValueError("the trapezoid rule needs at least 2 steps")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
    elif rule == "riemann_right":
        alphas = np.arange(1, steps + 1, dtype=np.float64) / steps
        weights = np.full(steps, 1.0 / steps)
    elif rule == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        alphas, weights = 0.5 * (nodes + 1.0), 0.5 * w
    else:
        raise ValueError(f"unknown rule {rule!r}")
    return alphas, weights


def plan_chunks(n_items: int, n_inner: int, batch_size: int) -> list[tuple[int, int, int, int]]:
    """Chunks ``(i0, i1, k0, k1)`` of the items × inner-steps grid with ≤ ``batch_size`` rows.

    Whole items when all their inner steps fit in a batch, else one item at a time in blocks of
    ``batch_size`` steps. An item's steps are always grouped the same way, whatever ``n_items``.
    """
    chunks = []
    if n_inner <= batch_size:
        per = batch_size // n_inner
        for i0 in range(0, n_items, per):
            chunks.append((i0, min(i0 + per, n_items), 0, n_inner))
    else:
        for i0 in range(n_items):
            for k0 in range(0, n_inner, batch_size):
                chunks.append((i0, i0 + 1, k0, min(k0 + batch_size, n_inner)))
    return chunks


class IntegratedGradients(GradientMethod):
    """IG_i(x) = (x_i − x̂_i) ∫₀¹ ∂h(f(x̂ + α(x − x̂)))_y/∂x_i dα ≈ (x_i − x̂_i) Σ_k w_k ∂_i h(f(x̂ + α_k(x − x̂)))_y.

    Sundararajan et al. 2017; Eq. 1 of the AttEXplore paper, Eq. 11–12 of the gradient review.
    Completeness: Σ_i IG_i = h(f(x))_y − h(f(x̂))_y up to the quadrature error; the gap is
    ``Explanation.completeness_gap`` and is also stored in ``diagnostics`` (absolute and relative
    to |h(f(x))_y − h(f(x̂))_y|).

    The reference drivers (LA, AttEXplore) call Captum with ``method="riemann_trapezoid"``,
    50 steps, a black (zero) baseline, on a model ending in softmax, i.e. ``output="probs"``;
    see :func:`quadrature` for the (m−1)/m factor between Captum's trapezoid weights and ours.

    Cost: B·m forward and backward passes; f(x) and f(x̂) are read off the nodes α = 1 and α = 0
    when the rule has them (path points are ``torch.lerp(x̂, x, α)``, exact at both ends), else
    they cost a forward without gradients (one for the whole batch when it shares x̂); a separate
    forward of x happens for ``target=None``.

    Args:
        steps: number of quadrature nodes m (≥ 2 for the trapezoid rule).
        baseline: ``"zero"``, a constant, ``"blur"`` (Gaussian blur of x, kernel 31, σ 5, reflect
            padding: the GEEX reference's blur baseline), or an array of one explicand's shape
            (shared by the batch) or of the batch's shape.
        rule: ``"trapezoid"``, ``"riemann_right"`` or ``"gausslegendre"``.
        output, device, batch_size, memory_format: see :class:`~onnxplain.gradients.saliency.Saliency`.
    """

    name = "ig"
    budget_param = "steps"
    uses_baseline = True
    needs_scores = False

    def __init__(
        self,
        steps: int = 50,
        baseline: Any = "zero",
        rule: Rule = "trapezoid",
        *,
        output: Output = "probs",
        device: str | None = None,
        batch_size: int | None = None,
        memory_format: MemoryFormat = "auto",
    ) -> None:
        super().__init__(output=output, device=device, batch_size=batch_size, memory_format=memory_format)
        self.rule = check_choice("rule", rule, RULES)
        self.steps = check_positive_int("steps", steps, 2 if rule == "trapezoid" else 1)
        self.baseline = Baseline.parse(baseline)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "steps": self.steps,
            "rule": self.rule,
            "baseline": self.baseline.describe(),
        }

    def _check_input(self, x: torch.Tensor) -> None:
        super()._check_input(x)
        self.baseline.check_shape(tuple(x.shape))  # before the first forward

    def _attribute(
        self, run: Runner, x: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor | None
    ) -> Result:
        base = self.baseline.resolve_torch(x)
        alphas_np, weights_np = quadrature(self.rule, self.steps)
        alphas = torch.as_tensor(alphas_np, dtype=x.dtype, device=x.device)
        weights = torch.as_tensor(weights_np, dtype=x.dtype, device=x.device)
        # f(x) and f(x̂) come from the path nodes α = 1 and α = 0 when the rule has them (lerp
        # hits both end points exactly); otherwise from forwards without gradients.
        k_one = int(np.flatnonzero(alphas_np == 1.0)[0]) if np.any(alphas_np == 1.0) else None
        k_zero = int(np.flatnonzero(alphas_np == 0.0)[0]) if np.any(alphas_np == 0.0) else None
        score = None if scores is None else gather(scores, targets)
        at_one = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
        at_zero = torch.empty_like(at_one)
        total = torch.zeros_like(x)
        shape = (1, -1) + (1,) * (x.ndim - 1)
        x_l, base_l = run.in_layout(x), run.in_layout(base)
        for i0, i1, k0, k1 in plan_chunks(x.shape[0], self.steps, run.batch_size):
            nb, nk = i1 - i0, k1 - k0
            pts = run.empty_chunk((nb * nk, *x.shape[1:]))
            torch.lerp(
                base_l[i0:i1, None], x_l[i0:i1, None], alphas[k0:k1].view(shape), out=pts.view(nb, nk, *x.shape[1:])
            )
            tgt = targets[i0:i1].repeat_interleave(nk)
            w = weights[k0:k1].repeat(nb)  # the quadrature weights, applied inside the backward pass
            g, val = run.grad(pts, tgt, w)
            path_vals = val.view(nb, nk)
            if k_one is not None and k0 <= k_one < k1:
                at_one[i0:i1] = path_vals[:, k_one - k0]
            if k_zero is not None and k0 <= k_zero < k1:
                at_zero[i0:i1] = path_vals[:, k_zero - k0]
            total[i0:i1] += sum_groups(g, nb)
        attributions = total * (x - base)
        if score is None:
            score = at_one if k_one is not None else gather(run.scores(x), targets)
        baseline_score = at_zero if k_zero is not None else baseline_scores(run, base, targets)
        delta = score - baseline_score
        gap = attributions.flatten(1).sum(1) - delta
        rel = gap / delta.abs().clamp_min(torch.finfo(delta.dtype).tiny)
        return Result(
            attributions,
            score=score,
            baseline_score=baseline_score,
            diagnostics={
                "completeness_gap": gap.cpu().double().numpy(),
                "relative_completeness_gap": rel.cpu().double().numpy(),
            },
        )


def baseline_scores(run: Runner, base: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """h(f(x̂_n))[y_n] from forwards without gradients; one forward when the batch shares x̂."""
    if base.shape[0] > 1 and bool((base == base[:1]).all()):
        return gather(run.scores(base[:1]).expand(base.shape[0], -1), targets)
    return gather(run.scores(base), targets)
