"""The detections of an unperturbed image, the targets chosen among them, and D-RISE's score.

D-RISE (Petsiuk et al., CVPR 2021, ``reference/frontier-methods.md`` §6): a target detection
d_t = (L_t, P_t = onehot(c_t)) and a query's proposals d_j = (L_j, O_j, P_j) give

    s_t = max_j  IoU(L_t, L_j) · cos(P_t, P_j) · O_j

The max over proposals needs no matching and no NMS, and proposals of score 0 cannot change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.checks import check_choice
from onnxplain.errors import InvalidInputError
from onnxplain.models.detection.boxes import Letterbox, iou_matrix, nms
from onnxplain.models.detection.decoders import Proposals

OBJECTNESS: tuple[str, ...] = ("auto", "model", "max_class", "none")
"""How O_j is taken: ``"model"`` the format's objectness (YOLOv5/YOLOX objectness, an NMS
graph's score); ``"max_class"`` the largest class probability (what YOLOv8's own NMS ranks by);
``"none"`` 1 (the bare IoU × cosine); ``"auto"`` = ``"model"`` where the format has objectness,
else ``"max_class"``. Without any objectness term a YOLOv8 background anchor whose faint scores
point at the target's class would score cos ≈ 1: ``"max_class"`` keeps such proposals at ≈ 0."""


@dataclass(frozen=True)
class Detection:
    """One detection of the unperturbed image: ``box`` in explicand (content) pixels, ``image_box``
    in the original photo's pixels (both xyxy, clipped to the picture)."""

    index: int
    class_id: int
    label: str
    confidence: float
    box: tuple[float, float, float, float]
    image_box: tuple[float, float, float, float]
    model_box: tuple[float, float, float, float]
    """The detector's own box in its input frame (not clipped): what the similarity compares."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "class_id": self.class_id,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "box": [round(v, 2) for v in self.box],
            "image_box": [round(v, 2) for v in self.image_box],
        }


def list_detections(
    proposals: Proposals, letterbox: Letterbox, names: Sequence[str], *, conf: float, iou: float
) -> list[Detection]:
    """Sample 0's detections: confidence ≥ ``conf``, class-aware NMS at ``iou``, best first."""
    confidence = proposals.confidence()[0]
    classes = proposals.best_class()[0]
    keep = np.flatnonzero(confidence >= conf)
    order = keep[nms(proposals.boxes[0, keep], confidence[keep], classes[keep], iou)]
    model = proposals.boxes[0, order]
    h, w = letterbox.content_hw
    content = np.clip(letterbox.model_to_content(model), 0, np.array([w, h, w, h]))
    image = letterbox.content_to_image(content)
    out = []
    for i, j in enumerate(order):  # once per detection of the unperturbed image
        c = int(classes[j])
        label = names[c] if 0 <= c < len(names) else f"class {c}"
        out.append(Detection(i, c, label, float(confidence[j]), _box(content[i]), _box(image[i]), _box(model[i])))
    return out


def select_targets(detections: list[Detection], targets: Any, conf: float) -> list[Detection]:
    """The detections to explain: ``"all"``, indices into ``detections`` (best first), or class names.

    Refuses (one sentence) an empty choice, an index out of range or an unknown class name.
    """
    if not detections:
        raise InvalidInputError(f"the detector finds nothing with confidence ≥ {conf:g} in this image; lower conf.")
    if isinstance(targets, str) and targets == "all":
        return list(detections)
    items = [targets] if isinstance(targets, (str, int, np.integer)) else list(targets)
    if not items:
        raise InvalidInputError("no target detection was chosen.")
    if all(isinstance(t, str) for t in items):
        wanted = {t.lower() for t in items}
        chosen = [d for d in detections if d.label.lower() in wanted]
        if not chosen:
            found = sorted({d.label for d in detections})
            raise InvalidInputError(f"no detection of class {', '.join(items)}; the image has: {', '.join(found)}.")
        return chosen
    if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in items):
        raise InvalidInputError(f"targets must be 'all', detection indices or class names, got {targets!r}.")
    bad = [int(t) for t in items if not 0 <= int(t) < len(detections)]
    if bad:
        raise InvalidInputError(f"detection index {bad[0]} is out of range: the image has {len(detections)} detections.")
    return [detections[int(t)] for t in items]


def drise_scores(
    proposals: Proposals, target_boxes: np.ndarray, target_classes: np.ndarray, objectness: str = "auto"
) -> np.ndarray:
    """D-RISE's similarity of each query's proposals to each target: (n, T) float64.

    ``target_boxes`` (T, 4) xyxy in the proposals' frame; ``target_classes`` (T,); ``objectness``
    one of :data:`OBJECTNESS`.
    """
    iou = iou_matrix(np.asarray(target_boxes, np.float64)[None], proposals.boxes)  # (n, T, A)
    cos = proposals.class_similarity(target_classes)  # (n, T, A)
    o = objectness_factor(proposals, objectness)  # (n, A)
    s = iou * cos * o[:, None, :]  # (n, T, A)
    return s.max(axis=2, initial=0.0)


def objectness_factor(proposals: Proposals, objectness: str) -> np.ndarray:
    """O_j of every proposal (n, A) under the rule ``objectness`` (:data:`OBJECTNESS`)."""
    check_choice("objectness", objectness, OBJECTNESS)
    has = proposals.objectness is not None
    if objectness == "none":
        return np.ones(proposals.boxes.shape[:2])
    if objectness == "model" or (objectness == "auto" and has):
        if not has:
            raise InvalidInputError("this detector's output has no objectness; use objectness='max_class' or 'none'.")
        return np.asarray(proposals.objectness, np.float64)
    if proposals.class_scores is None:  # hard labels: the score is the only confidence there is
        return np.asarray(proposals.objectness, np.float64)
    return proposals.class_scores.max(axis=-1).astype(np.float64)


def _box(v: np.ndarray) -> tuple[float, float, float, float]:
    return float(v[0]), float(v[1]), float(v[2]), float(v[3])
