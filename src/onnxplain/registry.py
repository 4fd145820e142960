"""Method names (as used by the CLI and in results) mapped to their classes, imported lazily.

Black-box methods take any QueryModel; white-box methods take a ``torch.nn.Module``.
"""

from __future__ import annotations

import importlib
from typing import Any

from onnxplain.errors import InvalidInputError

BLACKBOX: dict[str, str] = {
    "geex": "onnxplain.blackbox.geex:GEEX",
    "ge": "onnxplain.blackbox.geex:GE",
    "rise": "onnxplain.blackbox.rise:RISE",
    "lime": "onnxplain.blackbox.lime:LIME",
    "occlusion": "onnxplain.blackbox.occlusion:Occlusion",
    "kernelshap": "onnxplain.blackbox.kernelshap:KernelSHAP",
    "partitionshap": "onnxplain.blackbox.partition:PartitionSHAP",
}
WHITEBOX: dict[str, str] = {
    "saliency": "onnxplain.gradients.saliency:Saliency",
    "ig": "onnxplain.gradients.integrated:IntegratedGradients",
    "smoothgrad": "onnxplain.gradients.smoothgrad:SmoothGrad",
    "agi": "onnxplain.gradients.agi:AGI",
    "attexplore": "onnxplain.gradients.attexplore:AttEXplore",
    "la": "onnxplain.gradients.la:LA",
}
METHODS: dict[str, str] = {**BLACKBOX, **WHITEBOX}


def get_method(name: str) -> type[Any]:
    """The explainer class registered under ``name`` (case-insensitive)."""
    key = name.lower()
    if key not in METHODS:
        raise InvalidInputError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}.")
    module, _, cls = METHODS[key].partition(":")
    return getattr(importlib.import_module(module), cls)


def is_blackbox(name: str) -> bool:
    return name.lower() in BLACKBOX
