"""Saliency (Simonyan et al. 2013): the gradient of the explained score at x."""

from __future__ import annotations

from typing import Any

import torch

from onnxplain.checks import check_bool
from onnxplain.gradients._common import GradientMethod, MemoryFormat, Output, Result, Runner


class Saliency(GradientMethod):
    """A_i = ∂h(f(x))_y / ∂x_i (signed), or |∂h(f(x))_y / ∂x_i| with ``abs=True``.

    The "vanilla gradient" of Simonyan et al. (2013); the review's Eq. for vanilla gradients.
    Note that Captum's ``Saliency`` takes the absolute value by default; here the default is the
    signed gradient and ``abs=True`` gives Captum's (and the reference "SM" driver's) map.
    One forward and one backward pass per explicand (plus a forward of x when ``target=None``).

    Args:
        abs: return |gradient| instead of the signed gradient.
        output: ``"probs"`` explains the softmax probability of the target, ``"logits"`` its logit.
        device: ``None`` = where the model's parameters are; otherwise the model is moved there.
        batch_size: samples per forward/backward pass; ``None`` ≈ 8.4 M input values per pass
            (55 images at 3×224×224, at most 1024); the value used is in ``params``.
        memory_format: ``"auto"`` runs a convolutional float32/16 module channels-last for the
            call (oneDNN on CPU: the same passes in 0.57–0.85 of the time), ``"channels_last"``
            forces it, ``"preserve"`` leaves module and input as they are. Parameters are frozen
            during the call; both are undone afterwards, and a module that cannot run
            channels-last (e.g. ``.view`` after a convolution) falls back to its own layout.
            The layout used is ``params["memory_format"]``; maps agree with ``"preserve"`` to
            float32 rounding of the different convolution kernels (2e-7 relative on the benchmark
            CNNs; 5e-3 on a random-weight ResNet-18, whose float32 gradients are 7 % from float64).
    """

    name = "saliency"
    needs_scores = False

    def __init__(
        self,
        *,
        abs: bool = False,
        output: Output = "probs",
        device: str | None = None,
        batch_size: int | None = None,
        memory_format: MemoryFormat = "auto",
    ) -> None:
        super().__init__(output=output, device=device, batch_size=batch_size, memory_format=memory_format)
        self.abs = check_bool("abs", abs)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "abs": self.abs}

    def _attribute(
        self, run: Runner, x: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor | None
    ) -> Result:
        parts, values = [], []
        for s in range(0, x.shape[0], run.batch_size):
            g, v = run.grad(x[s : s + run.batch_size], targets[s : s + run.batch_size])
            parts.append(g.abs() if self.abs else g)
            values.append(v)
        return Result(torch.cat(parts), score=torch.cat(values))
