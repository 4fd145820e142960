"""TorchModel: a torch module seen as a QueryModel (forward only, no gradients).

Used for ONNX-vs-torch parity checks and to run black-box methods on a torch model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from onnxplain.devices import torch_device
from onnxplain.errors import InvalidInputError
from onnxplain.models.base import BaseQueryModel, Normalize, OutputHead


class TorchModel(BaseQueryModel):
    """Wrap ``module`` (taking (N, *input_shape) float32) as a QueryModel.

    ``input_shape`` defaults to ``module.input_shape`` when the module declares it (as
    :class:`~onnxplain.export.PixelSpaceModel` does); ``num_classes`` is probed when not given.
    The module is put in eval mode; forwards run under ``torch.inference_mode``.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        input_shape: Sequence[int] | None = None,
        *,
        num_classes: int | None = None,
        device: str = "cpu",
        output: OutputHead = "probs",
        batch_size: int | None = None,
        max_queries: int | None = None,
        preprocess: Normalize | None = None,
        ends_in_softmax: bool | None = None,
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise InvalidInputError(f"TorchModel needs a torch.nn.Module, got {type(module).__name__}.")
        shape = input_shape if input_shape is not None else getattr(module, "input_shape", None)
        if shape is None:
            raise InvalidInputError("input_shape is required: the module does not declare one.")
        self.torch_device = torch_device(device)
        self.module = module.eval().to(self.torch_device)
        super().__init__(
            shape, num_classes or 1, output=output, batch_size=batch_size, max_queries=max_queries, preprocess=preprocess
        )
        self.device = str(self.torch_device)
        self.uses_host_cpu = self.torch_device.type == "cpu"
        if ends_in_softmax is None:
            last = list(module.modules())[-1]
            ends_in_softmax = isinstance(last, torch.nn.Softmax)
        self.ends_in_softmax = ends_in_softmax
        if num_classes is None:
            self.num_classes = int(self._forward(np.zeros((1, *self.input_shape), np.float32)).shape[1])

    def _forward(self, chunk: Any) -> np.ndarray:
        with torch.inference_mode():
            tensor = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
            out = self.module(tensor.to(self.torch_device, torch.float32))
            return out.reshape(out.shape[0], -1).float().cpu().numpy()
