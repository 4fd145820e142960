"""LA, Local Attribution (Zhu et al., ACM MM 2024)."""

from __future__ import annotations

from typing import Any, Literal

import torch

from onnxplain.checks import check_choice, check_positive_float, check_positive_int, check_seed
from onnxplain.errors import InvalidInputError
from onnxplain.gradients._common import (
    GradientMethod,
    MemoryFormat,
    Output,
    Result,
    Runner,
)
from onnxplain.gradients._explore import explore, false_classes

Variant = Literal["reference", "paper"]


class LA(GradientMethod):
    """Local Attribution: adversarial exploration confined to the local box ε = x/s (paper Eq. 1).

    With p = h(f(·)) (softmax once), y the explained class, ε = x/s elementwise and every step
    taken from the original x (paper §3.4, "a one-step attack from the original sample"):

    - S−1 *targeted* runs, one per false class t, k = 0 … T−1, no early stop (paper Eq. 7):
      x_{k+1} = clamp(x + c·ε ⊙ sign(∇p_t(x_k)), 0, 1),  A += −∇p_y(x_k) ⊙ (x_{k+1} − x);
    - one *untargeted* run (paper Eq. 6):
      x_{k+1} = clamp(x − c·ε ⊙ sign(∇p_y(x_k)), 0, 1),   A += −∇p_y(x_k) ⊙ (x_{k+1} − x);

    A is the plain sum over all runs and steps (a sampled estimate of paper Eq. 2). Every query
    lies in [x(1 − c/s), x(1 + c/s)] ∩ [0, 1]; wherever x_i = 0, ε_i = 0 and A_i = 0 exactly; the
    untargeted increments equal c·ε ⊙ |∇p_y| ≥ 0.

    Variants (``reference/whitebox-methods.md`` §4):

    - ``"reference"`` (the public ``LA/saliency/la.py``, the default): c = 1 (full ε), false
      classes drawn at random. The code draws them from the global numpy RNG, so they change from
      batch to batch; here a local ``numpy.random.default_rng(seed)`` is used for every image
      (every explicand gets the same classes, whatever the batch).
    - ``"paper"``: c = ½ (the paper's ε/2 steps, Eq. 6–7), false classes in descending order of
      confidence. Neither appears in any public version of the code.

    The reference copies also sum ``prob[:, idx]`` over the batch (mixing explicands); here
    gradients are per-sample gathers.

    Negative inputs are rejected: ε = x/s would turn negative and flip the step direction
    (ImageNet-normalised inputs); pass [0,1] pixels and put the normalisation inside the model.

    Args:
        spatial_range: s, the box half-width is x/s (20 in the paper's runs).
        steps: T, steps per run (20).
        samples: S, runs per explicand (S−1 targeted + 1 untargeted; 20). The number of
            targeted runs is capped at K−1 for a K-class model.
        variant: ``"reference"`` or ``"paper"``.
        seed: seed of the random class selection.
        output, device, batch_size, memory_format: see :class:`~onnxplain.gradients.saliency.Saliency`;
            ``batch_size`` counts runs processed together.

    Cost per explicand: S·T forwards, (2(S−1) + 1)·T backward passes (400 and 780 for S = T = 20).
    """

    name = "la"
    budget_param = "steps"
    seeded = True
    bounds = (0.0, 1.0)

    def __init__(
        self,
        spatial_range: float = 20,
        steps: int = 20,
        samples: int = 20,
        variant: Variant = "reference",
        seed: int = 0,
        *,
        output: Output = "probs",
        device: str | None = None,
        batch_size: int | None = None,
        memory_format: MemoryFormat = "auto",
    ) -> None:
        super().__init__(output=output, device=device, batch_size=batch_size, memory_format=memory_format)
        self.spatial_range = check_positive_float("spatial_range", spatial_range)
        self.steps = check_positive_int("steps", steps)
        self.samples = check_positive_int("samples", samples)
        self.variant = check_choice("variant", variant, ("reference", "paper"))
        self.seed = check_seed(seed)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "spatial_range": self.spatial_range,
            "steps": self.steps,
            "samples": self.samples,
            "variant": self.variant,
            "seed": self.seed,
        }

    def _check_input(self, x: torch.Tensor) -> None:
        if float(x.min()) < 0:
            raise InvalidInputError(
                f"LA needs non-negative inputs (its box is ε = x/s) but x has values down to {float(x.min()):.4g}: "
                "pass [0,1] pixels and put the normalisation inside the model."
            )
        super()._check_input(x)

    def _attribute(self, run: Runner, x: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor) -> Result:
        scale = (0.5 if self.variant == "paper" else 1.0) / self.spatial_range
        selection = "top" if self.variant == "paper" else "random"
        common = dict(
            steps=self.steps,
            epsilon=scale,
            relative=True,
            from_origin=True,
            early_stop=False,
            bounds=self.bounds,
            batch_size=run.batch_size,
        )
        n_targeted = min(self.samples - 1, scores.shape[1] - 1)
        attributions = torch.zeros_like(x)
        if n_targeted > 0:
            rows_img, rows_cls = false_classes(scores, targets, n_targeted, selection, self.seed)
            attributions += explore(run, x, targets, rows_img, rows_cls, **common)
        all_img = torch.arange(x.shape[0], device=x.device)
        attributions += explore(run, x, targets, all_img, None, **common)
        return Result(
            attributions, params={"n_targeted": n_targeted, "step_scale": scale * self.spatial_range}
        )
