"""Decoders: a detector's raw outputs → proposals (boxes, objectness, class scores).

Formats (every box ends up xyxy in the model input's pixels):

* ``"yolov5"``: one output ``(N, A, 5 + K)``: ``cx, cy, w, h, objectness, K class probabilities``
  (Ultralytics YOLOv5; A = 3 anchors per grid cell). Confidence = objectness × class probability.
* ``"yolox"``: the same layout straight from YOLOX's head (its ONNX export default): one
  proposal per cell, ``(cx, cy) = (out + cell) · stride``, ``(w, h) = exp(out) · stride`` over
  strides 8, 16, 32, objectness and classes already sigmoid (YOLOX ``demo_postprocess``).
* ``"yolov8"``: one output ``(N, 4 + K, A)`` (Ultralytics YOLOv8/v11): ``cx, cy, w, h`` and K
  class probabilities, no objectness; ``(N, A, 4 + K)`` when exported transposed.
* ``"nms"``: graphs with NMS inside: ``boxes (N, M, 4)`` + ``scores (N, M)`` + ``classes (N, M)``
  (+ an optional ``num_dets (N, 1)``); one ``(N, M, 6)`` output ``x1, y1, x2, y2, score, class``
  (Ultralytics ``end2end``/YOLOv10); or one ``(M, 7)`` output ``batch, x1, y1, x2, y2, class,
  score`` (YOLOv7 ``--end2end`` for ONNX Runtime). Rows past ``num_dets`` or with score 0 are
  padding and get objectness 0.

:func:`choose_decoder` picks the format from the outputs of one probe forward (their real
shapes, so dynamic dims do not matter) and the Ultralytics metadata (``task``, ``names``,
``end2end``), or takes the one the user named; its ``reason`` says what was decided and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.models.detection.boxes import xywh_to_xyxy

DECODERS: tuple[str, ...] = ("yolov5", "yolov8", "yolox", "nms")
YOLO_STRIDES: tuple[int, ...] = (8, 16, 32)


@dataclass
class Proposals:
    """A batch of decoded proposals, A per sample (padded for NMS graphs).

    ``boxes`` (n, A, 4) xyxy in model-input pixels; ``objectness`` (n, A) where the format has
    it (YOLOv5/YOLOX objectness, an NMS graph's score), else None; ``class_scores`` (n, A, K)
    class probabilities (YOLO heads) or ``labels`` (n, A) hard classes (NMS graphs).
    """

    boxes: np.ndarray
    objectness: np.ndarray | None = None
    class_scores: np.ndarray | None = None
    labels: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.boxes.shape[0])

    def best_class(self) -> np.ndarray:
        """(n, A) the most probable class of each proposal."""
        if self.labels is not None:
            return self.labels
        assert self.class_scores is not None
        return self.class_scores.argmax(axis=-1)

    def confidence(self) -> np.ndarray:
        """(n, A) the score the format's own NMS ranks by: objectness × max class probability
        (YOLOv5/YOLOX), max class probability (YOLOv8), the score (NMS graphs)."""
        if self.class_scores is None:
            assert self.objectness is not None
            return self.objectness
        top = self.class_scores.max(axis=-1)
        return top if self.objectness is None else self.objectness * top

    def class_similarity(self, classes: np.ndarray) -> np.ndarray:
        """cos(P_t, P_j) for one-hot targets P_t of ``classes`` (T,): (n, T, A).

        cos(onehot(c), P) = P_c / ‖P‖₂ (0 for an all-zero P); for hard labels it is [label = c].
        """
        classes = np.asarray(classes, dtype=np.int64)
        if self.labels is not None:
            return (self.labels[:, None, :] == classes[None, :, None]).astype(np.float64)
        assert self.class_scores is not None
        p = self.class_scores.astype(np.float64)  # (n, A, K)
        norm = np.sqrt(np.einsum("nak,nak->na", p, p))  # (n, A)
        picked = np.take(p, classes, axis=2).transpose(0, 2, 1)  # (n, T, A)
        return np.divide(picked, norm[:, None, :], out=np.zeros_like(picked), where=norm[:, None, :] > 0)


@dataclass(frozen=True)
class Decoder:
    """One format's decoding of named outputs; built by :func:`choose_decoder`."""

    name: str
    outputs: tuple[str, ...]
    reason: str
    channels_last: bool = False
    layout: str = ""
    num_classes: int | None = None

    def decode(self, outputs: dict[str, np.ndarray], n: int, model_hw: tuple[int, int]) -> Proposals:
        """Proposals of ``n`` samples from the session's outputs (by name)."""
        arrays = [np.asarray(outputs[name]) for name in self.outputs]
        if self.name == "yolov8":
            return decode_yolov8(arrays[0], channels_last=self.channels_last)
        if self.name == "yolov5":
            return decode_yolov5(arrays[0])
        if self.name == "yolox":
            return decode_yolox(arrays[0], model_hw)
        if self.layout == "rows7":
            return decode_nms_rows7(arrays[0], n)
        if self.layout == "rows6":
            out = arrays[0].astype(np.float64)
            return Proposals(out[..., :4], objectness=out[..., 4], labels=np.rint(out[..., 5]).astype(np.int64))
        return decode_nms_separate(*arrays)

    def describe(self) -> dict[str, Any]:
        return {"decoder": self.name, "outputs": list(self.outputs), "reason": self.reason,
                **({"layout": self.layout} if self.layout else {}),
                **({"channels_last": True} if self.channels_last else {})}  # fmt: skip


# -- the formats --------------------------------------------------------------------------------


def decode_yolov8(out: np.ndarray, *, channels_last: bool = False) -> Proposals:
    """(N, 4 + K, A) (or (N, A, 4 + K) when ``channels_last``) → proposals without objectness."""
    rows = np.asarray(out, dtype=np.float64)
    rows = rows if channels_last else rows.transpose(0, 2, 1)  # (N, A, 4 + K)
    return Proposals(xywh_to_xyxy(rows[..., :4]), class_scores=rows[..., 4:])


def decode_yolov5(out: np.ndarray) -> Proposals:
    """(N, A, 5 + K) ``cx, cy, w, h, objectness, classes`` → proposals."""
    rows = np.asarray(out, dtype=np.float64)
    return Proposals(xywh_to_xyxy(rows[..., :4]), objectness=rows[..., 4], class_scores=rows[..., 5:])


def yolo_cells(model_hw: tuple[int, int], strides: tuple[int, ...] = YOLO_STRIDES) -> int:
    """Grid cells over all strides: Σ ⌈H/s⌉·⌈W/s⌉ (8400 at 640×640, 3549 at 416×416)."""
    h, w = model_hw
    return sum(math.ceil(h / s) * math.ceil(w / s) for s in strides)


def yolox_grid(model_hw: tuple[int, int], strides: tuple[int, ...] = YOLO_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Cell origins (A, 2) as (x, y) and their strides (A, 1), stride by stride, rows first."""
    h, w = model_hw
    cells, steps = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(math.ceil(h / s)), np.arange(math.ceil(w / s)), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((xs.size, 1), s))
    return np.concatenate(cells).astype(np.float64), np.concatenate(steps).astype(np.float64)


def decode_yolox(out: np.ndarray, model_hw: tuple[int, int]) -> Proposals:
    """YOLOX's raw head (N, A, 5 + K): centres (out + cell)·stride, sizes exp(out)·stride."""
    rows = np.asarray(out, dtype=np.float64)
    cells, strides = yolox_grid(model_hw)
    if len(cells) != rows.shape[1]:
        raise InvalidInputError(
            f"a YOLOX head at {model_hw[0]}×{model_hw[1]} has {len(cells)} proposals, the output has {rows.shape[1]}."
        )
    centre = (rows[..., 0:2] + cells) * strides
    size = np.exp(np.clip(rows[..., 2:4], None, 30.0)) * strides  # clip: exp overflows past ~700
    xywh = np.concatenate([centre, size], axis=-1)
    return Proposals(xywh_to_xyxy(xywh), objectness=rows[..., 4], class_scores=rows[..., 5:])


def decode_nms_separate(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, num: Any = None) -> Proposals:
    """``boxes (N, M, 4)``, ``scores (N, M)``, ``classes (N, M)`` and optional ``num_dets (N, 1)``."""
    b = np.asarray(boxes, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64).reshape(b.shape[:2]).copy()
    c = np.rint(np.asarray(classes, dtype=np.float64)).astype(np.int64).reshape(b.shape[:2])
    if num is not None:
        count = np.asarray(num).reshape(len(b), -1)[:, 0].astype(np.int64)
        s[np.arange(b.shape[1])[None, :] >= count[:, None]] = 0.0
    return Proposals(b, objectness=s, labels=c)


def decode_nms_rows7(rows: np.ndarray, n: int) -> Proposals:
    """(M, 7) rows ``batch, x1, y1, x2, y2, class, score`` → (n, max rows per sample) padded proposals."""
    r = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    batch = np.rint(r[:, 0]).astype(np.int64)
    if len(r) and (batch.min() < 0 or batch.max() >= n):
        raise InvalidInputError(f"the detector's rows name batch indices outside 0..{n - 1}.")
    counts = np.bincount(batch, minlength=n)
    width = max(1, int(counts.max(initial=0)))
    order = np.argsort(batch, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(r)) - starts[batch[order]]  # position of each row within its sample
    boxes, score, label = np.zeros((n, width, 4)), np.zeros((n, width)), np.full((n, width), -1, np.int64)
    boxes[batch[order], slot] = r[order, 1:5]
    label[batch[order], slot] = np.rint(r[order, 5]).astype(np.int64)
    score[batch[order], slot] = r[order, 6]
    return Proposals(boxes, objectness=score, labels=label)


# -- choosing -----------------------------------------------------------------------------------


def choose_decoder(
    outputs: dict[str, np.ndarray],
    metadata: dict[str, str],
    model_hw: tuple[int, int],
    n: int,
    requested: str | None = None,
    num_classes: int | None = None,
) -> Decoder:
    """The decoder for these probe ``outputs`` (by name, from a forward of ``n`` samples).

    ``num_classes`` (from the metadata's ``names``) separates ``4 + K`` from ``5 + K`` channels;
    ``requested`` names the format and skips the guess (its shape is still checked).
    """
    task = metadata.get("task")
    if task is not None and task != "detect":
        raise ModelLoadError(f"the model's metadata declares the task {task!r}; onnxplain explains 'detect' models only.")
    if requested is not None and requested not in DECODERS:
        raise InvalidInputError(f"decoder must be one of {', '.join(DECODERS)}, not {requested!r}.")
    named = {k: np.asarray(v) for k, v in outputs.items()}
    if len(named) > 1 or requested == "nms" or _is_nms_single(named, metadata, model_hw, n, num_classes):
        return _choose_nms(named, n, metadata)
    (name, out), = named.items()
    if out.ndim != 3 or out.shape[0] != n:
        raise ModelLoadError(
            f"output {name!r} has shape {list(out.shape)}; a detector needs (N, 4 + K, A), (N, A, 5 + K) or NMS outputs."
        )
    return _choose_yolo(name, out, model_hw, requested, num_classes)


def _is_nms_single(
    named: dict[str, np.ndarray], metadata: dict[str, str], model_hw: tuple[int, int], n: int, k: int | None
) -> bool:
    (out,) = named.values()
    if out.ndim == 2 and out.shape[1] == 7:
        return True
    if out.ndim != 3 or out.shape[2] != 6 or out.shape[1] < out.shape[2]:
        return False
    if metadata.get("end2end", "").lower() == "true":
        return True
    cells = yolo_cells(model_hw)
    return out.shape[1] not in (cells, 3 * cells) and k in (None, 0) and out.shape[1] <= 1000


def _choose_yolo(name: str, out: np.ndarray, model_hw: tuple[int, int], requested: str | None, k: int | None) -> Decoder:
    _, a, b = out.shape
    cells = yolo_cells(model_hw)
    if requested == "yolov8" or (requested is None and a < b):
        last = a > b if k is None else b == 4 + k and a != 4 + k
        width = b if last else a
        if width < 5 or (k is not None and width != 4 + k):
            raise ModelLoadError(f"output {name!r} {list(out.shape)} is not YOLOv8's (N, 4 + K, A) with K = {k}.")
        why = "named" if requested else f"(N, {a}, {b}): {a} = 4 + {a - 4} channels before {b} anchors"
        return Decoder("yolov8", (name,), f"yolov8: {why}", channels_last=last, num_classes=width - 4)
    if k is not None and b == 4 + k and requested is None:
        return Decoder("yolov8", (name,), f"yolov8 (transposed): (N, {a}, {b}), {b} = 4 + K with K = {k} names",
                       channels_last=True, num_classes=k)  # fmt: skip
    if b < 6 or (k is not None and b != 5 + k):
        raise ModelLoadError(f"output {name!r} {list(out.shape)} is not (N, A, 5 + K) with K = {k}.")
    raw = a == cells and np.abs(out[..., :2]).max(initial=0) < 4 and requested != "yolov5"
    if requested == "yolox" or (requested is None and raw):
        why = "named" if requested else f"{a} proposals = one per grid cell and (x, y) within a cell of its origin"
        return Decoder("yolox", (name,), f"yolox (raw head decoded with strides 8/16/32): {why}", num_classes=b - 5)
    why = "named" if requested else f"(N, {a}, {b}): channels last, {b} = 5 + {b - 5} (boxes, objectness, classes)"
    return Decoder("yolov5", (name,), f"yolov5: {why}", num_classes=b - 5)


def _choose_nms(named: dict[str, np.ndarray], n: int, metadata: dict[str, str]) -> Decoder:
    if len(named) == 1:
        (name, out), = named.items()
        if out.ndim == 2 and out.shape[1] == 7:
            return Decoder("nms", (name,), "nms: one (M, 7) output: batch, x1, y1, x2, y2, class, score", layout="rows7")
        if out.ndim == 3 and out.shape[2] == 6:
            return Decoder("nms", (name,), "nms: one (N, M, 6) output: x1, y1, x2, y2, score, class", layout="rows6")
        raise ModelLoadError(f"output {name!r} {list(out.shape)} is not an NMS output ((N, M, 6) or (M, 7)).")
    boxes = [k for k, v in named.items() if v.ndim == 3 and v.shape[0] == n and v.shape[2] == 4]
    if len(boxes) != 1:
        raise ModelLoadError(f"outputs {_shapes(named)}: an NMS detector needs exactly one (N, M, 4) boxes output.")
    m = named[boxes[0]].shape[1]
    pair = [k for k, v in named.items() if k != boxes[0] and v.size == n * m and v.shape[0] == n]
    num = [k for k, v in named.items() if k not in boxes and k not in pair and v.size == n]
    classes = [k for k in pair if np.issubdtype(named[k].dtype, np.integer) or _says(k, "class", "label", "cls")]
    scores = [k for k in pair if k not in classes]
    if len(scores) != 1 or len(classes) != 1 or len(num) > 1:
        raise ModelLoadError(
            f"outputs {_shapes(named)}: cannot tell boxes (N, M, 4), scores (N, M), classes (N, M) "
            "and num_dets (N, 1) apart; name the outputs 'boxes', 'scores', 'classes', 'num_dets'."
        )
    order = (boxes[0], scores[0], classes[0], *num)
    return Decoder("nms", order, f"nms: separate outputs boxes={order[0]!r}, scores={order[1]!r}, classes={order[2]!r}"
                   + (f", num_dets={num[0]!r}" if num else ""), layout="separate")  # fmt: skip


def _says(name: str, *words: str) -> bool:
    return any(w in name.lower() for w in words)


def _shapes(named: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {list(v.shape)}" for k, v in named.items())
