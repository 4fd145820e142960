"""Black-box maps of an object detector's detections: the library side of ``onnxplain explain
--task detect``.

For each photo, the detections to explain are found on the unperturbed photo
(:class:`~onnxplain.models.detector.DetectorModel`), then every method explains all of them from
one set of queries (:func:`~onnxplain.models.detector.explain_detections`). Outputs in ``out``:
``<photo>.<method>.det<i>.npy`` (attributions, the letterboxed explicand's shape),
``<photo>.<method>.det<i>.png`` (the map over the photo with the detection's box) and
``results.json`` (one record per photo and method, with one entry per detection; also the result
cache's index, so a re-run reuses what was made with the same settings).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain.pipeline.cache import (
    JsonIndex,
    Record,
    ResultCache,
    array_digest,
    make_dir,
    settings_key,
    write_npy,
)
from onnxplain.pipeline.progress import Progress

RESULTS = "results.json"
SCHEMA_VERSION = 1


@dataclass
class DetectJob:
    """Photos (files, named ``ids``), the detector and how to pick targets, and the methods."""

    detector: Any
    photos: list[Path]
    ids: list[str]
    methods: dict[str, Any]
    targets: Any = "all"
    conf: float = 0.25
    iou: float = 0.7
    objectness: str = "auto"
    max_queries: int | None = None
    force: bool = False
    model_info: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectResult:
    document: dict[str, Any]
    records: list[Record]
    reused: int


def run_detect(job: DetectJob, out: Path, *, progress: Progress | None = None) -> DetectResult:
    """Every (photo, method): reuse its record when the settings match, else explain and write."""
    from onnxplain.models.detector import DetectorModel, load_photo

    models = []
    for path in job.photos:  # every photo read and every target found before anything is written
        models.append(DetectorModel(job.detector, load_photo(path), targets=job.targets, conf=job.conf,
                                    iou=job.iou, objectness=job.objectness, max_queries=job.max_queries))
    make_dir(out)
    index = JsonIndex(out / RESULTS, records_of=_records_of, document=lambda cur, old: _document(job, cur, old))
    cache = ResultCache(out, index, force=job.force)
    progress = progress or Progress()
    progress.start(len(models) * len(job.methods), "detections")
    records, reused = [], 0
    try:
        for photo, model, stem in zip(job.photos, models, job.ids, strict=True):
            for name, method in job.methods.items():
                rec, was_reused = _one(job, cache, progress, model, stem, str(photo), name, method, out)
                records.append(rec)
                reused += was_reused
    finally:
        progress.close()
    index.save()
    return DetectResult(index.document(), records, reused)


def _one(job: DetectJob, cache: ResultCache, progress: Progress, model: Any, stem: str, photo: str, name: str,
         method: Any, out: Path) -> tuple[Record, bool]:
    """One (photo, method): the cached record when its settings match, else a new one."""
    key = settings_key({"params": method.params(), "photo": array_digest(model.explicand),
                        "targets": [t.to_dict() for t in model.targets], **job.settings})
    rec = cache.lookup(stem, name, key)
    if rec is not None:
        cache.reuse(rec)
        progress.finished(stem, name, seconds=0.0, reused=True)
        return rec, True
    queries = len(model.targets) * method.queries_per_explicand(model.input_shape)
    with progress.item(stem, name, queries=queries, model=model):
        rec = _explain(method, name, model, stem, photo, key, out)
    cache.commit(rec)
    progress.finished(stem, name, seconds=float(rec["wall_seconds"]), reused=False)
    return rec, False


def _explain(method: Any, name: str, model: Any, stem: str, photo: str, key: str, out: Path) -> Record:
    from onnxplain.models.detector import explain_detections
    from onnxplain.registry import is_signed
    from onnxplain.report.boxes import detection_overlay
    from onnxplain.report.heatmap import save_png

    t0 = time.perf_counter()
    exps = explain_detections(method, model)
    wall = time.perf_counter() - t0
    detections, files = [], {}
    for i, (exp, target) in enumerate(zip(exps, model.targets, strict=True)):
        npy, png = f"{stem}.{name}.det{i}.npy", f"{stem}.{name}.det{i}.png"
        a = np.asarray(exp.attributions, np.float32)
        picture = detection_overlay(model.explicand, a.mean(axis=0), [target.box], [model.labels[i]],
                                    centre=not is_signed(name))
        write_npy(out / npy, a)
        save_png(out / png, picture)
        files.update({f"npy{i}": npy, f"png{i}": png})
        detections.append({"target": i, "detection": target.to_dict(), "label": model.labels[i],
                           "score": float(np.asarray(exp.score)), "n_queries": exp.n_queries,
                           "detector_forwards": exp.params.get("detector_forwards"), "files": [npy, png]})
    return {"id": stem, "method": name, "image": photo, "detections": detections, "files": files,
            "settings_key": key, "params": exps[0].params if exps else method.params(), "wall_seconds": wall}


def _records_of(document: Any) -> list[Record]:
    if isinstance(document, dict) and document.get("schema") == SCHEMA_VERSION and document.get("command") == "detect":
        return list(document.get("results", []))
    return []


def _document(job: DetectJob, current: list[Record], earlier: list[Record]) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "command": "detect", "model": job.model_info, "settings": job.settings,
            "results": current + earlier}
