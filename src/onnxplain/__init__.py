"""onnxplain: explain ONNX image classifiers from queries, against white-box references in PyTorch.

The public API is re-exported here; torch-backed parts load only when first used.
"""

from __future__ import annotations

from typing import Any

from onnxplain.errors import (
    InvalidInputError,
    ModelLoadError,
    NonFiniteOutputError,
    OnnxplainError,
    QueryBudgetExceeded,
)
from onnxplain.explanation import Explanation
from onnxplain.models import FunctionModel, Normalize, OnnxModel, QueryModel
from onnxplain.registry import get_method

__version__ = "0.1.0"

__all__ = [
    "Explanation",
    "FunctionModel",
    "InvalidInputError",
    "ModelLoadError",
    "NonFiniteOutputError",
    "Normalize",
    "OnnxModel",
    "OnnxplainError",
    "QueryBudgetExceeded",
    "QueryModel",
    "TorchModel",
    "get_method",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "TorchModel":
        from onnxplain.models.torch import TorchModel

        return TorchModel
    raise AttributeError(f"module 'onnxplain' has no attribute {name!r}")
