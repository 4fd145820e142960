"""PixelSpaceModel: a classifier that takes float32 [0,1] pixels, with its normalisation inside."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class PixelSpaceModel(nn.Module):
    """``module((x - mean) / std)``: one function of [0,1] pixels for ONNX export and gradients alike.

    Exporting this wrapper puts the normalisation into the ONNX graph, so the ONNX model queried by
    the black-box explainers and the torch module differentiated by the white-box ones are the same
    function of the same input.
    """

    def __init__(
        self,
        module: nn.Module,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.module = module
        self.normalized = mean is not None
        if self.normalized:
            std = std if std is not None else [1.0] * len(mean)
            self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))
        self.input_shape = tuple(input_shape) if input_shape is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalized:
            x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.module(x)
