"""Many images on many workers: :func:`explain_dataset` (in-process or on Ray Data).

Ray is optional (``pip install 'onnxplain[ray]'``): this package imports without it and only the
``num_workers ≥ 1`` path needs it.
"""

from __future__ import annotations

from onnxplain.distributed.runner import DatasetResult, explain_dataset
from onnxplain.distributed.specs import (
    MethodSpec,
    ModelSpec,
    OnnxModelSpec,
    RemoteModelSpec,
    as_method_spec,
    as_model_spec,
    image_seed,
)
from onnxplain.distributed.store import ResultStore

__all__ = [
    "DatasetResult",
    "MethodSpec",
    "ModelSpec",
    "OnnxModelSpec",
    "RemoteModelSpec",
    "ResultStore",
    "as_method_spec",
    "as_model_spec",
    "explain_dataset",
    "image_seed",
]
