"""Object detectors behind the query boundary: boxes and the letterbox, decoders of raw outputs,
the runtime, target detections and D-RISE's similarity (:mod:`onnxplain.models.detector` holds
the QueryModel adapter)."""

from __future__ import annotations

from onnxplain.models.detection.boxes import Letterbox, iou_matrix, nms, xywh_to_xyxy
from onnxplain.models.detection.decoders import DECODERS, Decoder, Proposals, choose_decoder
from onnxplain.models.detection.runtime import Detector, open_onnx_detector
from onnxplain.models.detection.targets import OBJECTNESS, Detection, drise_scores

__all__ = [
    "DECODERS",
    "OBJECTNESS",
    "Decoder",
    "Detection",
    "Detector",
    "Letterbox",
    "Proposals",
    "choose_decoder",
    "drise_scores",
    "iou_matrix",
    "nms",
    "open_onnx_detector",
    "xywh_to_xyxy",
]
