"""Box geometry for detectors: conversions, IoU, non-maximum suppression and the letterbox.

Boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates (a box from 0 to 10 is 10 pixels
wide), the convention of Ultralytics and torchvision. IoU uses no "+1": xaitk-saliency's pixel
convention (``w = x2 − x1 + 1``) turns two disjoint 0.2-wide boxes in normalised coordinates
into an IoU of 0.29 (``reference/frontier-methods.md`` §6, test 1).

Three coordinate frames appear around a detector (:class:`Letterbox`):

* **image**: the photo's own pixels (H₀ × W₀);
* **content**: the photo resized to fit the model, aspect kept (h × w): the explicand space,
  the frame of every map and of :attr:`DetectorModel.detections`;
* **model**: the network's input (H × W), the content placed at ``(left, top)`` on a grey pad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError

ULTRALYTICS_PAD = 114 / 255
"""The grey Ultralytics and YOLOX pad their letterbox with (114 of 255)."""


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(…, 4) centre-size boxes (cx, cy, w, h) → corner boxes (x1, y1, x2, y2)."""
    b = np.asarray(boxes)
    half = b[..., 2:4] / 2
    return np.concatenate([b[..., 0:2] - half, b[..., 0:2] + half], axis=-1)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(…, 4) xyxy → (…,) areas, 0 for degenerate boxes (x2 ≤ x1 or y2 ≤ y1)."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``a`` (…, T, 4) and ``b`` (…, A, 4) xyxy boxes: (…, T, A), no "+1".

    IoU = |a ∩ b| / (|a| + |b| − |a ∩ b|), 0 where the union is empty (two degenerate boxes).
    Leading dimensions broadcast (e.g. targets (1, T, 4) against proposals (n, A, 4)).
    """
    a = np.asarray(a, dtype=np.float64)[..., :, None, :]  # (…, T, 1, 4)
    b = np.asarray(b, dtype=np.float64)[..., None, :, :]  # (…, 1, A, 4)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h  # (…, T, A)
    union = box_area(a) + box_area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware greedy non-maximum suppression; indices kept, highest score first.

    A box is dropped when a higher-scoring kept box of the same class overlaps it by IoU >
    ``iou_threshold`` (as Ultralytics' and torchvision's ``batched_nms``). One pass per kept box,
    each a vector operation over the remaining candidates (run once per image, not per query).
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    boxes = np.asarray(boxes, dtype=np.float64)
    classes = np.asarray(classes)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        overlap = iou_matrix(boxes[i : i + 1], boxes[rest])[0]
        order = rest[(overlap <= iou_threshold) | (classes[rest] != classes[i])]
    return np.asarray(keep, dtype=np.int64)


@dataclass(frozen=True)
class Letterbox:
    """Where a photo goes in the model's input: scale, content size and pad offsets.

    As Ultralytics' ``LetterBox`` (``auto=False``, ``scaleup=True``) and YOLOX's ``preproc``:
    ``r = min(H/H₀, W/W₀)``; content ``(h, w) = (round(H₀·r), round(W₀·r))``; the rest of the
    model input is filled with :attr:`pad_value`, the content centred (Ultralytics: ``top =
    round(dh/2 − 0.1)``, ``left = round(dw/2 − 0.1)``) or at the top-left corner (YOLOX,
    NudeNet, ddddocr).
    """

    image_hw: tuple[int, int]
    model_hw: tuple[int, int]
    content_hw: tuple[int, int]
    top: int
    left: int
    pad_value: float = ULTRALYTICS_PAD
    center: bool = True

    @classmethod
    def fit(
        cls, image_hw: tuple[int, int], model_hw: tuple[int, int], *, center: bool = True,
        pad_value: float = ULTRALYTICS_PAD,
    ) -> Letterbox:
        """The letterbox of a photo of ``image_hw`` in a model input of ``model_hw``."""
        (h0, w0), (mh, mw) = (int(v) for v in image_hw), (int(v) for v in model_hw)
        if min(h0, w0, mh, mw) <= 0:
            raise InvalidInputError(f"cannot letterbox an image of {image_hw} into a model input of {model_hw}.")
        r = min(mh / h0, mw / w0)
        h, w = max(1, min(mh, round(h0 * r))), max(1, min(mw, round(w0 * r)))
        top = round((mh - h) / 2 - 0.1) if center else 0
        left = round((mw - w) / 2 - 0.1) if center else 0
        return cls((h0, w0), (mh, mw), (h, w), int(top), int(left), float(pad_value), bool(center))

    @property
    def content_shape(self) -> tuple[int, int]:
        """(h, w) of the explicand: the resized photo without its pad."""
        return self.content_hw

    def _scale(self) -> np.ndarray:
        (h0, w0), (h, w) = self.image_hw, self.content_hw
        return np.array([w0 / w, h0 / h, w0 / w, h0 / h])

    def model_to_content(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes from model-input pixels to content (explicand) pixels."""
        return np.asarray(boxes, dtype=np.float64) - np.array([self.left, self.top, self.left, self.top])

    def content_to_model(self, boxes: np.ndarray) -> np.ndarray:
        return np.asarray(boxes, dtype=np.float64) + np.array([self.left, self.top, self.left, self.top])

    def content_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes from content pixels to the original photo's pixels (clipped to the photo)."""
        out = np.asarray(boxes, dtype=np.float64) * self._scale()
        h0, w0 = self.image_hw
        return np.clip(out, 0, np.array([w0, h0, w0, h0]))

    def image_to_content(self, boxes: np.ndarray) -> np.ndarray:
        return np.asarray(boxes, dtype=np.float64) / self._scale()

    def pad(self, content: Any, out: Any) -> Any:
        """Write a (n, C, h, w) content batch into ``out`` (n, C, H, W), whose pad is already set."""
        h, w = self.content_hw
        out[:, :, self.top : self.top + h, self.left : self.left + w] = content
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "image_hw": list(self.image_hw),
            "model_hw": list(self.model_hw),
            "content_hw": list(self.content_hw),
            "top": self.top,
            "left": self.left,
            "pad_value": round(self.pad_value, 6),
            "placement": "centred" if self.center else "top-left",
        }


def resize_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(C, H₀, W₀) float32 [0,1] → (C, h, w), bilinear (Pillow, per channel, float precision).

    Done once per explained photo (never per query): the explicand is the resized photo.
    """
    from PIL import Image

    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 3:
        raise InvalidInputError(f"an image must be (C, H, W), got shape {x.shape}.")
    h, w = (int(v) for v in hw)
    if x.shape[1:] == (h, w):
        return np.ascontiguousarray(x)
    channels = [
        np.asarray(Image.fromarray(c, mode="F").resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0))
        for c in x
    ]  # one call per colour channel (3), not per pixel or query
    return np.clip(np.stack(channels), 0.0, 1.0).astype(np.float32)
