"""DetectorModel: an object detector and its target detections seen as a QueryModel.

Every black-box explainer and query-only metric takes a model ``(N, C, H, W) -> (N, K)``. A
detector returns boxes, so :class:`DetectorModel` turns it into that shape for one photo:

* the explicand is the photo resized to fit the detector's input, aspect kept (the letterbox
  content, :class:`~onnxplain.models.detection.boxes.Letterbox`); each query is placed on the
  letterbox's grey pad before the detector, so maps cover the photo and never the pad;
* its "classes" are the **target detections**, found on the unperturbed photo (confidence ≥
  ``conf``, class-aware NMS), chosen by index, class name or all of them;
* the score of target t on a query is D-RISE's similarity max_j IoU · cos · O_j
  (:func:`~onnxplain.models.detection.targets.drise_scores`).

Several targets of one photo are explained together by passing T copies of the explicand with
targets 0…T−1 (:func:`explain_detections`): the queries of the copies are identical (every
black-box method uses one perturbation set for all explicands), and :meth:`DetectorModel.__call__`
forwards a batch made of g identical blocks once, so T maps cost the queries of one.
``n_queries`` counts the samples really forwarded; ``n_requested`` what the explainers asked for.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.base import BaseQueryModel
from onnxplain.models.detection.boxes import Letterbox, resize_image
from onnxplain.models.detection.runtime import Detector, open_onnx_detector
from onnxplain.models.detection.targets import Detection, drise_scores, list_detections, select_targets

__all__ = ["DetectorModel", "explain_detections", "is_detector", "load_photo", "open_detector", "repeated_blocks"]

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
"""Ultralytics ``predict`` defaults: confidence 0.25, NMS IoU 0.7."""
FINGERPRINT = 64
"""Pixels compared first when looking for repeated blocks (then the whole batch is compared)."""


def repeated_blocks(batch: np.ndarray) -> int:
    """The largest g such that ``batch`` (n, …) is g identical copies of its first n/g rows (≥ 1).

    Candidates are checked on a fingerprint of :data:`FINGERPRINT` fixed pixels per row, the
    survivor bit-exactly on the whole batch, so a detection is never skipped for rows that differ.
    """
    n = len(batch)
    if n < 2:
        return 1
    flat = batch.reshape(n, -1)
    picks = np.linspace(0, flat.shape[1] - 1, min(FINGERPRINT, flat.shape[1])).astype(np.int64)
    fp = flat[:, picks]  # (n, F)
    for g in (d for d in range(n, 1, -1) if n % d == 0):
        q = n // g
        if not (fp.reshape(g, q, -1) == fp[None, :q]).all():
            continue
        if (flat.reshape(g, q, -1) == flat[None, :q]).all():
            return g
    return 1


class DetectorModel(BaseQueryModel):
    """One photo's target detections as a QueryModel (scores in [0, 1], ``output="raw"``).

    Args:
        detector: a :class:`~onnxplain.models.detection.runtime.Detector` (:func:`open_detector`).
        image: the photo, (C, H₀, W₀) float32 RGB in [0,1] at any size.
        targets: ``"all"`` (every detection ≥ ``conf``), an index or indices into
            :attr:`detections` (best first), or class name(s).
        conf: confidence threshold of the detections listed on the unperturbed photo (0.25).
        iou: NMS IoU threshold for that list (0.7, Ultralytics' default).
        objectness: O_j in the similarity (:data:`~onnxplain.models.detection.targets.OBJECTNESS`).
        max_queries: budget of samples forwarded (the first forward, on the photo, counts).
        batch_size: samples per call (default: the detector's: 1 for a fixed batch-1 graph).

    Attributes: ``explicand`` (C, h, w), ``detections`` (all, best first), ``targets`` (chosen),
    ``letterbox``, ``labels`` (one per target, e.g. ``"person 0.91"``).
    """

    def __init__(
        self,
        detector: Detector,
        image: np.ndarray,
        *,
        targets: Any = "all",
        conf: float = DEFAULT_CONF,
        iou: float = DEFAULT_IOU,
        objectness: str = "auto",
        max_queries: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 3 or image.shape[0] != 3 or not np.isfinite(image).all():
            raise InvalidInputError(f"the photo must be a finite (3, H, W) array in [0,1], got shape {image.shape}.")
        if max_queries is not None and max_queries < 1:
            raise QueryBudgetExceeded("finding the detections to explain needs 1 query; the budget allows none.")
        self.detector = detector
        self.letterbox = Letterbox.fit(
            image.shape[1:], detector.model_hw, center=detector.center, pad_value=detector.pad_value
        )
        self.explicand = resize_image(image, self.letterbox.content_hw)
        self.objectness = objectness
        self.conf, self.iou = float(conf), float(iou)
        self.source = detector.source
        self._buffers: dict[int, np.ndarray] = {}
        t0, s0 = time.perf_counter(), detector.seconds
        proposals = detector.proposals(self._pad(self.explicand[None]))
        self.detections = list_detections(proposals, self.letterbox, detector.names, conf=conf, iou=iou)
        self.targets: list[Detection] = select_targets(self.detections, targets, conf)
        first = time.perf_counter() - t0
        super().__init__(
            self.explicand.shape, len(self.targets), output="raw", max_queries=max_queries,
            batch_size=batch_size or detector.batch_size,
        )  # fmt: skip
        self.n_queries, self.n_calls, self.model_seconds = 1, 1, first
        self.n_requested = 1
        self.runtime_seconds0 = s0
        self.target_boxes = np.array([t.model_box for t in self.targets], np.float64).reshape(-1, 4)  # (T, 4)
        self.target_classes = np.array([t.class_id for t in self.targets], np.int64)
        drise_scores(proposals, self.target_boxes, self.target_classes, objectness)  # checks the option once

    # -- queries ----------------------------------------------------------------------------------
    def _pad(self, content: np.ndarray) -> np.ndarray:
        """(n, C, h, w) explicand-space queries on the letterbox pad: (n, C, H, W), a reused buffer."""
        n = len(content)
        out = self._buffers.get(n)
        if out is None:
            out = self._buffers[n] = np.full((n, 3, *self.letterbox.model_hw), self.letterbox.pad_value, np.float32)
        return self.letterbox.pad(content, out)

    def prepare_chunk(self, chunk: Any) -> Any:
        return self._pad(np.asarray(chunk, dtype=np.float32))

    def _forward(self, chunk: np.ndarray) -> np.ndarray:
        """Detector, decoder and D-RISE similarity on one padded chunk: (n, T) scores."""
        proposals = self.detector.proposals(chunk)
        return drise_scores(proposals, self.target_boxes, self.target_classes, self.objectness)

    def __call__(self, batch: Any) -> np.ndarray:
        """Scores (N, T); a batch of g identical blocks (T copies of the photo's queries) is forwarded once."""
        batch = self.check_input(batch)
        self.n_requested += len(batch)
        g = repeated_blocks(batch) if isinstance(batch, np.ndarray) else 1
        if g == 1:
            return super().__call__(batch)
        return np.tile(super().__call__(batch[: len(batch) // g]), (g, 1))

    def reset_counters(self) -> None:
        super().reset_counters()
        self.n_requested = 0

    # -- what is explained -----------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """One name per target: ``"<class> <confidence>"``."""
        return [f"{t.label} {t.confidence:.2f}" for t in self.targets]

    def explicands(self) -> np.ndarray:
        """(T, C, h, w): one copy of the explicand per target, for ``explain(..., target=arange(T))``."""
        return np.repeat(self.explicand[None], len(self.targets), axis=0)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "detector": self.detector.describe(),
            "letterbox": self.letterbox.describe(),
            "similarity": "D-RISE: max_j IoU(L_t, L_j) · cos(onehot_t, P_j) · O_j",
            "objectness": self.objectness,
            "conf": self.conf,
            "nms_iou": self.iou,
            "detections": [d.to_dict() for d in self.detections],
            "targets": [t.index for t in self.targets],
        }

    def __repr__(self) -> str:
        return f"DetectorModel({self.source!r}, explicand={self.input_shape}, targets={self.labels})"


def explain_detections(
    method: Any, model: DetectorModel, targets: Sequence[int] | None = None, *, max_buffer_bytes: int = 2**28
) -> list[Any]:
    """One Explanation per target of ``model`` (all by default), from shared queries.

    Targets go through ``method.explain`` in groups of copies of the explicand (targets 0…G−1 of
    the group); a group's queries are forwarded once (:func:`repeated_blocks`). G keeps one
    call's query buffer (G · 64 queries) under ``max_buffer_bytes`` (256 MiB). Each result's
    ``params`` records ``targets_sharing_queries`` (G) and ``detector_forwards`` (what the group
    really cost, the forward on x included). The explainers' budget check (before any query)
    counts what they ask, G · N, so a ``max_queries`` budget must cover that although about N
    are forwarded.
    """
    chosen = list(range(model.num_classes)) if targets is None else [int(t) for t in targets]
    per_target = 64 * int(np.prod(model.input_shape)) * 4 * 2  # two reusable call buffers
    group = max(1, int(max_buffer_bytes) // per_target)
    out = []
    for start in range(0, len(chosen), group):  # one explain() per group of targets
        part = chosen[start : start + group]
        before = model.n_queries
        exp = method.explain(model, np.repeat(model.explicand[None], len(part), 0), target=np.array(part))
        forwards = model.n_queries - before
        for i in range(len(part)):
            item = exp[i] if exp.is_batch else exp
            params = {**item.params, "targets_sharing_queries": len(part), "detector_forwards": forwards}
            out.append(dataclasses.replace(item, params=params))
    return out


def load_photo(path: str | os.PathLike[str]) -> np.ndarray:
    """A picture file at its own size as (3, H, W) float32 RGB in [0,1] (the photo a
    :class:`DetectorModel` takes; it resizes it once to the letterbox content)."""
    from PIL import Image, UnidentifiedImageError

    from onnxplain.images import load_picture

    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInputError(f"{str(path)!r} is not an image Pillow can read ({type(exc).__name__}).") from exc
    return load_picture(path, (3, height, width))


def open_detector(path: str | os.PathLike[str] | bytes, **options: Any) -> Detector:
    """A detector from an ONNX file or bytes (:func:`~onnxplain.models.detection.runtime.open_onnx_detector`:
    ``decoder``, ``device``, ``imgsz``, ``batch_size``, ``names``, ``input_scale``, ``channel_order``,
    ``placement``, ``pad_value``) or from a v2 endpoint URL ``http(s)://host:port/v2/models/NAME``
    (:func:`~onnxplain.models.detection.remote.open_remote_detector`: also ``timeout``, ``retries``)."""
    if isinstance(path, str) and path.startswith(("http://", "https://")):
        from onnxplain.models.detection.remote import open_remote_detector

        return open_remote_detector(path, **options)
    return open_onnx_detector(path, **options)


def is_detector(path: str | os.PathLike[str]) -> bool:
    """Whether an ONNX file looks like a detector, from its metadata and declared outputs alone.

    True when Ultralytics' metadata says ``task: detect``; when an output has rank 3 that is not
    a squeezable (N, K, 1) score; when several outputs include a (N, M, 4) one; or when a rank-2
    output ``(M, 7)`` does not share the input's batch dimension (NMS rows, not a 7-class
    classifier). Unreadable files are not detectors (the classifier path reports the error).
    """
    from onnxplain.models._graph import dims
    from onnxplain.models._ort import load_proto, read_model_bytes

    try:
        proto = load_proto(*read_model_bytes(path))
    except Exception:  # noqa: BLE001 - any unreadable file: not a detector
        return False
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get("task") == "detect":
        return True
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    batch = dims(inputs[0])[0] if len(inputs) == 1 and dims(inputs[0]) else None
    shapes = [dims(o) for o in proto.graph.output]
    for d in shapes:
        if len(d) == 3 and not (d[2] == 1):
            return True
        if len(d) == 2 and d[1] == 7 and d[0] != batch:
            return True
    return len(shapes) > 1 and any(len(d) == 3 and d[2] == 4 for d in shapes)
