"""AGI, Adversarial Gradient Integration (Pan, Li & Zhu, IJCAI 2021)."""

from __future__ import annotations

from typing import Any, Literal

import torch

from onnxplain.checks import check_bounds, check_choice, check_positive_float, check_positive_int, check_seed
from onnxplain.gradients._common import (
    GradientMethod,
    MemoryFormat,
    Output,
    Result,
    Runner,
)
from onnxplain.gradients._explore import ClassSelection, explore, false_classes

Path = Literal["reference", "cumulative"]


class AGI(GradientMethod):
    """Adversarial Gradient Integration: gradients of the explained class integrated along
    adversarial paths towards false classes t (review Eq. 27; AttEXplore paper Eq. 2).

    With p = h(f(·)) (softmax applied once, ``output="probs"``), y the explained class and
    x₀ = x, for each false class t and k = 0 … steps−1, stopping *before* the step as soon as
    argmax f(x_k) = t:

    - ``path="reference"`` (the public code, ``pd90506/AGI`` ``pgd_step``; the default):
      x_{k+1} = clamp(x₀ + ε·sign(∇p_t(x_k)), 0, 1),  A += −∇p_y(x_k) ⊙ (x_{k+1} − x₀).
      Every step restarts from the original x₀, so every query lies within ε of x.
    - ``path="cumulative"`` (the path integral as the papers write it):
      x_{k+1} = clamp(x_k + ε·sign(∇p_t(x_k)), 0, 1),  A += −∇p_y(x_k) ⊙ (x_{k+1} − x_k).

    A is summed over the false classes (no division by their number, as in the code). The
    paper's normalisation ∇p_t/|∇p_t| inside sign() is a no-op and is omitted.

    Known paper-vs-code differences and reference bugs (``reference/whitebox-methods.md`` §2):
    the code steps from x₀ (above); its quantitative script applies softmax twice (here: once);
    the LMBTough copies sum ``out[:, idx]`` over the batch, mixing explicands (here: per-sample
    gathers, so results do not depend on the batch); class 999 is never drawn there and a drawn
    class equal to y becomes y+1 (here: see :func:`~onnxplain.gradients._explore.false_classes`).
    The reference explains the prediction; ``target=None`` does the same.

    Args:
        epsilon: ε, step size in input units (0.05 on [0,1] pixels).
        steps: maximum steps per false class (20 in the paper's runs).
        n_classes: false classes per explicand (20); capped at K−1 for a K-class model, the
            number used is recorded as ``params["n_classes_used"]``.
        class_selection: ``"random"`` (a seeded permutation, the same classes for every
            explicand), ``"evenly_spaced"`` (AGI_main's 0, K//k, …) or ``"top"`` (most probable).
        path: ``"reference"`` or ``"cumulative"``.
        seed: seed of the random class selection.
        bounds: the input range the path is clamped to; x must lie inside.
        output, device, batch_size, memory_format: see :class:`~onnxplain.gradients.saliency.Saliency`;
            ``batch_size`` counts paths processed together.

    Cost: at most n_classes·steps forwards and 2·n_classes·steps backward passes per explicand.
    """

    name = "agi"
    budget_param = "steps"
    seeded = True

    def __init__(
        self,
        epsilon: float = 0.05,
        steps: int = 20,
        n_classes: int = 20,
        class_selection: ClassSelection = "random",
        path: Path = "reference",
        seed: int = 0,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        output: Output = "probs",
        device: str | None = None,
        batch_size: int | None = None,
        memory_format: MemoryFormat = "auto",
    ) -> None:
        super().__init__(output=output, device=device, batch_size=batch_size, memory_format=memory_format)
        self.epsilon = check_positive_float("epsilon", epsilon)
        self.steps = check_positive_int("steps", steps)
        self.n_classes = check_positive_int("n_classes", n_classes)
        self.class_selection = check_choice(
            "class_selection", class_selection, ("random", "evenly_spaced", "top")
        )
        self.path = check_choice("path", path, ("reference", "cumulative"))
        self.seed = check_seed(seed)
        self.bounds = check_bounds(bounds)

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "epsilon": self.epsilon,
            "steps": self.steps,
            "n_classes": self.n_classes,
            "class_selection": self.class_selection,
            "path": self.path,
            "seed": self.seed,
            "bounds": list(self.bounds),
        }

    def _attribute(self, run: Runner, x: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor) -> Result:
        rows_img, rows_cls = false_classes(scores, targets, self.n_classes, self.class_selection, self.seed)
        attributions = explore(
            run,
            x,
            targets,
            rows_img,
            rows_cls,
            steps=self.steps,
            epsilon=self.epsilon,
            relative=False,
            from_origin=self.path == "reference",
            early_stop=True,
            bounds=self.bounds,
            batch_size=run.batch_size,
        )
        return Result(attributions, params={"n_classes_used": min(self.n_classes, scores.shape[1] - 1)})
