"""The only doors to a model: the QueryModel protocol and its adapters.

``TorchModel`` and ``RemoteModel`` are imported lazily so that ``import onnxplain.models`` needs
neither torch nor an HTTP stack.
"""

from __future__ import annotations

from typing import Any

from onnxplain.models.base import (
    BaseQueryModel,
    FunctionModel,
    QueryModel,
    as_batch,
    predict,
)
from onnxplain.models.heads import HEADS, softmax
from onnxplain.models.inputs import Normalize
from onnxplain.models.onnx import OnnxModel

__all__ = [
    "HEADS",
    "BaseQueryModel",
    "FunctionModel",
    "Normalize",
    "OnnxModel",
    "QueryModel",
    "RemoteModel",
    "TorchModel",
    "as_batch",
    "predict",
    "softmax",
]


def __getattr__(name: str) -> Any:
    if name == "TorchModel":
        from onnxplain.models.torch import TorchModel

        return TorchModel
    if name == "RemoteModel":
        from onnxplain.models.remote import RemoteModel

        return RemoteModel
    raise AttributeError(f"module 'onnxplain.models' has no attribute {name!r}")
