"""torch module → ONNX pair: the served ONNX model and the torch module are one function of [0,1] pixels."""

from onnxplain.export.onnx_export import ExportReport, check_parity, export_onnx
from onnxplain.export.torchvision_models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_state_dict,
    load_torchvision,
)
from onnxplain.export.wrap import PixelSpaceModel

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ExportReport",
    "PixelSpaceModel",
    "check_parity",
    "export_onnx",
    "load_state_dict",
    "load_torchvision",
]
