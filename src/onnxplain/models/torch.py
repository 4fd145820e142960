"""TorchModel: a torch module seen as a QueryModel (forward only, no gradients).

Used for ONNX-vs-torch parity checks and to run black-box methods on a torch model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from onnxplain.checks import check_bool, check_choice
from onnxplain.devices import torch_device
from onnxplain.errors import InvalidInputError
from onnxplain.models.base import BaseQueryModel, ChannelOrder, check_adapter_arguments
from onnxplain.models.heads import HEADS, Head, OutputHead
from onnxplain.models.inputs import Normalize

# The last submodule that fixes the head; anything else is taken for logits.
_HEAD_MODULES: tuple[tuple[type[torch.nn.Module], Head], ...] = (
    (torch.nn.Softmax, "softmax"),
    (torch.nn.LogSoftmax, "logsoftmax"),
    (torch.nn.Sigmoid, "sigmoid"),
    (torch.nn.Hardsigmoid, "sigmoid"),
)


def module_head(module: torch.nn.Module) -> tuple[Head, str]:
    """``(head, reason)`` from the module's last registered submodule (a forward that calls
    ``torch.softmax`` functionally cannot be seen: declare ``head=`` then)."""
    last = list(module.modules())[-1]
    for kind, head in _HEAD_MODULES:
        if isinstance(last, kind):
            return head, f"module: the last submodule is {type(last).__name__}"
    return "logits", f"module: the last submodule is {type(last).__name__} (taken for logits)"


class TorchModel(BaseQueryModel):
    """Wrap ``module`` (taking (N, *input_shape) float32) as a QueryModel.

    ``input_shape`` defaults to ``module.input_shape`` when the module declares it (as
    :class:`~onnxplain.export.PixelSpaceModel` does); ``num_classes`` is probed when not given.
    The module is put in eval mode; forwards run under ``torch.inference_mode``. ``head="auto"``
    reads the head from the last submodule (:func:`module_head`); ``ends_in_softmax`` is the older
    spelling of ``head="softmax"``/``"logits"``. ``channel_order`` as
    :class:`~onnxplain.models.base.BaseQueryModel`.
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
        channel_order: ChannelOrder = "RGB",
        head: Head | Literal["auto"] = "auto",
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise InvalidInputError(f"TorchModel needs a torch.nn.Module, got {type(module).__name__}.")
        shape = input_shape if input_shape is not None else getattr(module, "input_shape", None)
        if shape is None:
            raise InvalidInputError("input_shape is required: the module does not declare one.")
        check_choice("head", head, ("auto", *HEADS))
        check_adapter_arguments(
            input_shape=shape,
            num_classes=num_classes,
            output=output,
            batch_size=batch_size,
            max_queries=max_queries,
            preprocess=preprocess,
            channel_order=channel_order,
        )
        if ends_in_softmax is not None:
            check_bool("ends_in_softmax", ends_in_softmax)
        if head == "auto" and ends_in_softmax is not None:
            head, self.head_source = ("softmax" if ends_in_softmax else "logits"), "declared (ends_in_softmax)"
        elif head == "auto":
            head, self.head_source = module_head(module)
        else:
            self.head_source = "declared"
        self.head = head
        self.source = type(module).__name__
        self.torch_device = torch_device(device)
        self.module = module.eval().to(self.torch_device)
        super().__init__(
            shape,
            num_classes or 1,
            output=output,
            batch_size=batch_size,
            max_queries=max_queries,
            preprocess=preprocess,
            channel_order=channel_order,
        )
        self.device = str(self.torch_device)
        self.uses_host_cpu = self.torch_device.type == "cpu"
        if num_classes is None:
            try:
                probe = self._forward(np.zeros((1, *self.input_shape), np.float32))
            except RuntimeError as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise InvalidInputError(f"the module cannot run on input_shape {self.input_shape}: {first}") from exc
            self.num_classes = int(probe.shape[1])

    def _forward(self, chunk: Any) -> np.ndarray:
        with torch.inference_mode():
            tensor = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
            out = self.module(tensor.to(self.torch_device, torch.float32))
            return out.reshape(out.shape[0], -1).float().cpu().numpy()
