"""Black-box maps on the ONNX model, white-box maps on the torch model, all evaluated on the ONNX model.

The library side of ``onnxplain compare`` and ``onnxplain demo``. Order: model parity first
(:func:`compare_parity`: are the two models the same function?), then (:func:`run_compare`)
predictions, every map (reused through the result cache in ``out/maps/``), the query-only
metrics, the agreement between methods at several scales, and last ``out/report.html`` and
``out/results.json``. Returns data; prints nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain._io import to_jsonable
from onnxplain.evaluation.result import MetricResult
from onnxplain.pipeline.cache import JsonIndex, Record, ResultCache, make_dir, write_json, write_npy
from onnxplain.pipeline.evaluate import (
    MEASURE_TITLES,
    agreement_tables,
    default_step,
    evaluate_maps,
    summarise,
)
from onnxplain.pipeline.maps import MapOutputs, MapSet, MethodRun, explain_maps
from onnxplain.pipeline.predict import Predictions, check_parity, predict
from onnxplain.pipeline.progress import Progress
from onnxplain.registry import DEFAULT_METRICS, get_metric
from onnxplain.report.data import ImageResult, MapResult, MetricInfo, ReportData

SCHEMA_VERSION = 1


@dataclass
class CompareJob:
    """One comparison: models, explicands, the configured methods and how to evaluate them.

    ``runs`` are the methods (black-box runs explain ``onnx_model``, white-box runs
    ``torch_module``); ``metric_step=None`` resolves to :func:`default_step`; ``batch_size`` is
    passed to every metric (images per model call).
    """

    onnx_model: Any
    torch_module: Any | None
    batch: np.ndarray  # (B, C, H, W)
    names: list[str]
    sources: list[str]
    labels: list[str]
    runs: list[MethodRun]
    target: Any = None
    true_labels: list[str] | None = None
    metrics: Sequence[str] = DEFAULT_METRICS
    metric_step: int | None = None
    seed: int = 0
    device: str = "cpu"
    batch_size: int | None = None
    parity_tol: float = 1e-3
    force: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    title: str = "onnxplain: black-box vs white-box explanations"
    command: str = ""
    command_name: str = "compare"


@dataclass
class CompareResult:
    """What :func:`run_compare` made: the JSON document, the report's data and the parts the CLI prints."""

    document: dict[str, Any]
    report: ReportData
    summary: dict[str, dict[str, Any]]
    agreement: dict[str, dict[str, np.ndarray]]
    step: int
    reused: int


def compare_parity(job: CompareJob) -> dict[str, Any] | None:
    """The parity of the ONNX and torch models on the explicands and on noise (None without a torch model)."""
    if job.torch_module is None:
        return None
    from onnxplain.models.torch import TorchModel

    torch_model = TorchModel(job.torch_module, tuple(job.batch.shape[1:]), device=job.device, output="probs")
    return check_parity(job.onnx_model, torch_model, job.batch, seed=job.seed, tol=job.parity_tol)


def run_compare(
    job: CompareJob, out: Path, *, parity: dict[str, Any] | None = None, progress: Progress | None = None
) -> CompareResult:
    """Predictions, maps, metrics, agreement; writes ``out/report.html`` and ``out/results.json``."""
    metrics = [get_metric(name) for name in job.metrics]  # an unknown metric fails before any map
    preds = predict(job.onnx_model, job.batch, job.target)
    step = job.metric_step or default_step(*job.batch.shape[2:])
    for run in job.runs:
        run.check(job.batch)
    make_dir(out)  # only now: every check that needs no map has passed
    sets = explain_maps(job.runs, job.batch, job.names, preds.targets, _map_cache(out, job.force),
                        _map_outputs(out), progress=progress)
    maps = {name: s.maps for name, s in sets.items()}
    t0 = time.perf_counter()
    results = evaluate_maps(job.onnx_model, job.batch, maps, preds.targets, job.metrics,
                            step=step, seed=job.seed, batch_size=job.batch_size)
    settings = {**job.settings, "metric step (pixels)": step, "evaluation seconds": round(time.perf_counter() - t0, 3)}
    tables = agreement_tables(maps) if len(maps) > 1 else {}
    summary = {m: {**scores, **_costs(sets[m])} for m, scores in summarise(results).items()}
    infos = [MetricInfo(m.name, m.higher_is_better, m.description) for m in metrics]
    report = _report(job, preds, sets, results, tables, infos, settings, parity, summarise(results))
    document = _document(job, preds, sets, results, tables, settings, parity, summary)
    from onnxplain.report.html import write_html

    write_html(out / "report.html", report)
    write_json(out / "results.json", document)
    return CompareResult(document, report, summary, tables, step, sum(s.reused for s in sets.values()))


def _map_cache(out: Path, force: bool) -> ResultCache:
    index = JsonIndex(
        out / "maps" / "index.json",
        records_of=lambda doc: doc.get("records", []) if isinstance(doc, dict) else [],
        document=lambda current, earlier: {"schema": SCHEMA_VERSION, "records": current + earlier},
    )
    return ResultCache(out, index, force=force)


def _map_outputs(out: Path) -> MapOutputs:
    def files(item: str, method: str) -> dict[str, str]:
        return {"npy": f"maps/{item}.{method}.npy"}

    def write(files: dict[str, str], exp: Any, i: int) -> None:
        write_npy(out / files["npy"], np.asarray(exp.attributions, np.float32))

    return MapOutputs(files, write, extra=lambda i: {})


def _costs(s: MapSet) -> dict[str, Any]:
    """What a method's maps of every explicand cost, summed (with the method's kind)."""
    return {
        "n_queries": int(sum(r["n_queries"] for r in s.records)),
        "n_backward": int(sum(r["n_backward"] for r in s.records)),
        "seconds": float(sum(r["seconds"] for r in s.records)),
        "kind": s.records[0]["kind"],
    }


def _image_maps(i: int, sets: dict[str, MapSet], results: dict[str, dict[str, MetricResult]]) -> list[Record]:
    """The records of explicand ``i``'s maps with their per-image metric values."""
    out = []
    for method, s in sets.items():
        rec = {k: v for k, v in s.records[i].items() if k not in ("id", "files", "wall_seconds", "target", "shape")}
        rec["file"] = s.records[i]["files"]["npy"]
        rec["metrics"] = {name: float(np.asarray(r.per_image)[i]) for name, r in results[method].items()}
        out.append(rec)
    return out


def _image_agreement(i: int, names: list[str], tables: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    pixels = tables.get("pixels", {}).get("spearman")
    return {
        "measure": "spearman",
        "methods": names if tables else [],
        "matrix": None if pixels is None else pixels[i].tolist(),
        "scales": {s: {m: v[i].tolist() for m, v in by.items()} for s, by in tables.items()},
    }


def _document(
    job: CompareJob, preds: Predictions, sets: dict[str, MapSet], results: dict[str, dict[str, MetricResult]],
    tables: dict[str, dict[str, np.ndarray]], settings: dict[str, Any], parity: dict[str, Any] | None,
    summary: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """``results.json`` of a comparison."""
    first = next(iter(results.values()), {})
    images = [
        {
            "name": job.names[i], "source": job.sources[i], "target": int(preds.targets[i]),
            "label": job.labels[int(preds.targets[i])], "score": float(preds.target_scores[i]),
            "true_label": None if job.true_labels is None else job.true_labels[i],
            "maps": _image_maps(i, sets, results), "agreement": _image_agreement(i, list(sets), tables),
        }
        for i in range(len(job.batch))
    ]
    metrics = [
        {"name": name, "higher_is_better": r.higher_is_better,
         "params": {k: v for k, v in to_jsonable(r.params).items() if k != "targets"}}
        for name, r in first.items()
    ]
    return {
        "schema": SCHEMA_VERSION, "command": job.command_name, "model": job.model_info, "parity": parity,
        "settings": settings, "metrics": metrics, "summary": summary, "images": images, "report": "report.html",
    }


def _report(
    job: CompareJob, preds: Predictions, sets: dict[str, MapSet], results: dict[str, dict[str, MetricResult]],
    tables: dict[str, dict[str, np.ndarray]], infos: list[MetricInfo], settings: dict[str, Any],
    parity: dict[str, Any] | None, summary: dict[str, dict[str, float]],
) -> ReportData:
    """What the HTML report shows (the summary is the same numbers as ``results.json``'s)."""
    images = [_report_image(job, preds, sets, results, tables, i) for i in range(len(job.batch))]
    return ReportData(
        title=job.title, images=images, metrics=infos, settings=settings, summary=summary,
        method_params={m: to_jsonable(s.records[0]["params"]) for m, s in sets.items() if s.records},
        model=job.model_info, parity=parity, command=job.command,
        notes=[] if parity is None or parity["ok"] else [
            "The ONNX and PyTorch models disagree (see Model parity): compare the maps with care."
        ],
    )


def _report_image(
    job: CompareJob, preds: Predictions, sets: dict[str, MapSet], results: dict[str, dict[str, MetricResult]],
    tables: dict[str, dict[str, np.ndarray]], i: int,
) -> ImageResult:
    maps = []
    for method, s in sets.items():
        rec = s.records[i]
        maps.append(MapResult(
            method=method, kind=rec["kind"], saliency=s.maps[i].mean(axis=0),
            metrics={name: float(np.asarray(r.per_image)[i]) for name, r in results[method].items()},
            n_queries=rec["n_queries"], n_backward=rec["n_backward"], seconds=rec["seconds"],
            model_seconds=rec["model_seconds"], completeness_gap=rec.get("completeness_gap"),
            diagnostics={k: v for k, v in (rec.get("diagnostics") or {}).items() if np.isscalar(v)},
        ))
    curves = {
        name: {m: (np.asarray(results[m][name].x_axis), np.asarray(results[m][name].curves)[i])
               for m in sets if results[m][name].curves is not None and results[m][name].x_axis is not None}
        for name in job.metrics
    }
    t = int(preds.targets[i])
    return ImageResult(
        name=job.names[i], source=job.sources[i], image=job.batch[i], target=t, label=job.labels[t],
        score=float(preds.target_scores[i]), true_label=None if job.true_labels is None else job.true_labels[i],
        top=preds.top(i, job.labels), maps=maps, curves={k: v for k, v in curves.items() if v},
        agreement_methods=list(sets) if tables else [],
        agreements={f"{MEASURE_TITLES[m]}, {s}": v[i] for s, by in tables.items() for m, v in by.items()},
    )
