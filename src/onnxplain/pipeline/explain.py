"""Black-box maps of one QueryModel for a set of explicands: the library side of ``onnxplain explain``.

Outputs in ``out``: ``<id>.<method>.npy`` (attributions, the explicand's shape),
``<id>.<method>.png`` (the map's picture over the explicand, :func:`~onnxplain.report.heatmap.map_picture`)
and ``results.json``, which is also the result cache's index: it is rewritten after every map, so
a killed run keeps every finished map, and a re-run reuses those made with the same settings.
Records of other explicands explained earlier into ``out`` with the same model stay listed while
their files exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain.pipeline.cache import JsonIndex, Record, ResultCache, make_dir, write_npy
from onnxplain.pipeline.maps import Executor, MapOutputs, MethodRun, explain_maps
from onnxplain.pipeline.predict import Predictions, predict
from onnxplain.pipeline.progress import Progress

RESULTS = "results.json"
SCHEMA_VERSION = 1


@dataclass
class ExplainJob:
    """Explicands (``batch``, named ``ids``, read from ``sources``), the model and the methods.

    ``model_key`` identifies the model and its preprocessing: earlier records in ``out`` made
    with another model are dropped from ``results.json``.
    """

    model: Any
    batch: np.ndarray
    ids: list[str]
    sources: list[str]
    labels: list[str]
    runs: list[MethodRun]
    model_key: str
    target: Any = None
    force: bool = False
    model_info: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExplainResult:
    """The ``results.json`` document, this run's records (image-major) and how many were reused."""

    document: dict[str, Any]
    records: list[Record]
    reused: int


def run_explain(
    job: ExplainJob, out: Path, *, executor: Executor | None = None, progress: Progress | None = None
) -> ExplainResult:
    """Targets (one query per explicand), then every map (reused or computed), then ``results.json``."""
    preds = predict(job.model, job.batch, job.target)
    for run in job.runs:
        run.check(job.batch)
    make_dir(out)  # only now: every check that needs no map has passed
    index = JsonIndex(
        out / RESULTS,
        records_of=_records_of,
        document=lambda current, earlier: _document(job, out, current, earlier),
    )
    cache = ResultCache(out, index, force=job.force)
    sets = explain_maps(job.runs, job.batch, job.ids, preds.targets, cache, _outputs(job, out, preds),
                        executor=executor, progress=progress)
    index.save()
    records = [sets[run.name].records[i] for i in range(len(job.batch)) for run in job.runs]
    return ExplainResult(index.document(), records, sum(s.reused for s in sets.values()))


def _records_of(document: Any) -> list[Record]:
    if isinstance(document, dict) and document.get("schema") == SCHEMA_VERSION and document.get("command") == "explain":
        return list(document.get("results", []))
    return []


def _document(job: ExplainJob, out: Path, current: list[Record], earlier: list[Record]) -> dict[str, Any]:
    kept = [
        rec for rec in earlier
        if rec.get("model_key") == job.model_key and all((out / str(f)).is_file() for f in rec["files"].values())
    ]
    return {
        "schema": SCHEMA_VERSION,
        "command": "explain",
        "model": job.model_info,
        "settings": job.settings,
        "results": current + kept,
    }


def _outputs(job: ExplainJob, out: Path, preds: Predictions) -> MapOutputs:
    from onnxplain.report.heatmap import map_picture, save_png

    def files(item: str, method: str) -> dict[str, str]:
        return {"npy": f"{item}.{method}.npy", "png": f"{item}.{method}.png"}

    def write(names: dict[str, str], exp: Any, i: int) -> None:
        a = np.asarray(exp.attributions, np.float32)
        picture, _ = map_picture(job.batch[i], a.mean(axis=0), exp.method)
        write_npy(out / names["npy"], a)
        save_png(out / names["png"], picture)

    def extra(i: int) -> dict[str, Any]:
        t = int(preds.targets[i])
        return {"image": job.sources[i], "stem": job.ids[i], "label": job.labels[t],
                "model_score": float(preds.target_scores[i]), "model_key": job.model_key}

    return MapOutputs(files, write, extra)
