"""Black-box maps on the ONNX model, white-box maps on the torch model, all evaluated on the ONNX model.

Shared by ``onnxplain compare`` and ``onnxplain demo``. Order: model parity first (are the two
models the same function?), then predictions, then every map, then the query-only metrics and
the agreement between methods, then the report and ``results.json``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain._io import to_jsonable
from onnxplain.cli._common import (
    Console,
    QueryProgress,
    format_table,
    item_progress,
    read_json,
    write_json,
    write_npy,
)
from onnxplain.errors import InvalidInputError, NonFiniteOutputError

SCHEMA_VERSION = 1
DEFAULT_METRICS = ("aopc_deletion", "insertion_auc", "deletion_auc")
METRIC_DESCRIPTIONS = {
    "aopc_deletion": "GEEX paper protocol: normalised area over the deletion curve, pixels replaced by 0",
    "insertion_auc": "RISE/LA protocol: area under the score curve while pixels are restored onto a zero image",
    "deletion_auc": "RISE/LA protocol: area under the score curve while pixels are set to 0",
}
PARITY_RANDOM_SAMPLES = 8


@dataclass
class Job:
    """One comparison run: models, explicands and the configured methods."""

    onnx_model: Any
    torch_module: Any | None
    batch: np.ndarray  # (B, C, H, W)
    names: list[str]
    sources: list[str]
    labels: list[str]
    blackbox: dict[str, Any]  # name -> configured explainer
    whitebox: dict[str, Any]
    target: int | None = None
    true_labels: list[str] | None = None
    metrics: Sequence[str] = DEFAULT_METRICS
    metric_step: int | None = None
    seed: int = 0
    device: str = "cpu"
    parity_tol: float = 1e-3
    settings: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    title: str = "onnxplain: black-box vs white-box explanations"
    command: str = ""
    command_name: str = "compare"


# -- parity ---------------------------------------------------------------------------------------
def check_parity(onnx_model: Any, torch_model: Any, batch: np.ndarray, *, seed: int, tol: float) -> dict[str, Any]:
    """ONNX vs torch class probabilities on the explicands and on seeded uniform-noise inputs."""
    rng = np.random.default_rng(seed)
    noise = rng.random((PARITY_RANDOM_SAMPLES, *batch.shape[1:]), dtype=np.float32)
    inputs = np.concatenate([batch, noise])
    p_onnx = np.asarray(onnx_model(inputs), np.float64)
    p_torch = np.asarray(torch_model(inputs), np.float64)
    if p_onnx.shape != p_torch.shape:
        raise InvalidInputError(
            f"the ONNX model returns {p_onnx.shape[1]} classes but the torch model {p_torch.shape[1]}."
        )
    diff = np.abs(p_onnx - p_torch)
    n = len(batch)
    top_x = float((p_onnx[:n].argmax(1) == p_torch[:n].argmax(1)).mean())
    top_noise = float((p_onnx[n:].argmax(1) == p_torch[n:].argmax(1)).mean())
    max_diff = float(diff.max())
    return {
        "ok": bool(max_diff <= tol and top_x == 1.0),
        "max |Δ probability|": max_diff,
        "mean |Δ probability|": float(diff.mean()),
        "top-1 agreement (explicands)": top_x,
        "top-1 agreement (uniform noise)": top_noise,
        "samples compared": int(len(inputs)),
        "tolerance": tol,
    }


# -- metrics --------------------------------------------------------------------------------------
def metric_function(name: str) -> Any:
    import onnxplain.evaluation as ev

    fn = getattr(ev, name, None)
    if fn is None or name.startswith("_") or not callable(fn) or name in ("agreement", "MetricResult"):
        raise InvalidInputError(f"unknown metric {name!r}; choose from: {', '.join(DEFAULT_METRICS)}.")
    return fn


def _call_metric(fn: Any, model: Any, x: np.ndarray, maps: np.ndarray, targets: np.ndarray,
                 *, step: int, seed: int) -> Any:
    params = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {"target": targets}
    if "stride" in params:
        kwargs["stride"] = step
    if "step" in params:
        kwargs["step"] = step
    if "seed" in params:
        kwargs["seed"] = seed
    return fn(model, x, maps, **kwargs)


def default_step(height: int, width: int) -> int:
    """Pixels changed per curve step: about 100 points per curve (MNIST 28×28: 8 px, 224×224: 502 px)."""
    return max(1, math.ceil(height * width / 100))


def evaluate_all(
    model: Any,
    batch: np.ndarray,
    maps: dict[str, np.ndarray],
    targets: np.ndarray,
    metric_names: Sequence[str],
    *,
    step: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """``{method: {metric: MetricResult}}``, each metric run once per method on the whole batch."""
    fns = {name: metric_function(name) for name in metric_names}
    return {
        method: {name: _call_metric(fn, model, batch, a, targets, step=step, seed=seed) for name, fn in fns.items()}
        for method, a in maps.items()
    }


def agreement_matrix(maps: dict[str, np.ndarray], index: int) -> tuple[list[str], np.ndarray]:
    """Spearman rank correlation between every pair of methods' maps of explicand ``index``."""
    from onnxplain.evaluation import agreement

    names = list(maps)
    m = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            value = agreement(maps[names[i]][index], maps[names[j]][index])["spearman"].score
            m[i, j] = m[j, i] = value
    return names, m


# -- the run --------------------------------------------------------------------------------------
def _explain_one(explainer: Any, model: Any, x: np.ndarray, target: int, method: str) -> Any:
    exp = explainer.explain(model, x, target=target)
    a = np.asarray(exp.attributions, dtype=np.float32)
    if a.shape != x.shape:
        raise RuntimeError(f"{method} returned attributions of shape {a.shape}, expected {x.shape}.")
    if not np.isfinite(a).all():
        raise NonFiniteOutputError(f"{method} produced non-finite attributions.")
    return exp


def _settings_key(method: str, params: dict[str, Any], identity: str, target: int) -> str:
    blob = json.dumps(to_jsonable({"m": method, "p": params, "id": identity, "t": target}), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def run_job(job: Job, out: Path, con: Console, *, force: bool = False, identity: str = "") -> dict[str, Any]:
    """Run everything, write ``out/maps/*.npy``, ``out/report.html`` and ``out/results.json``; return the document."""
    from onnxplain.models.torch import TorchModel
    from onnxplain.report.data import ImageResult, MapResult, MetricInfo, ReportData
    from onnxplain.report.html import write_html

    batch = job.batch
    n_images = len(batch)
    parity = None
    if job.torch_module is not None:
        torch_model = TorchModel(job.torch_module, tuple(batch.shape[1:]), device=job.device, output="probs")
        parity = check_parity(job.onnx_model, torch_model, batch, seed=job.seed, tol=job.parity_tol)
        con.say(
            f"model parity: max |Δp| = {parity['max |Δ probability|']:.3g}, top-1 agreement "
            f"{parity['top-1 agreement (explicands)']:.0%} on the images, "
            f"{parity['top-1 agreement (uniform noise)']:.0%} on noise — "
            + ("OK" if parity["ok"] else "MISMATCH")
        )
        if not parity["ok"]:
            con.note(
                "onnxplain: warning: the ONNX and torch models disagree; white-box maps explain a different "
                "function (check --mean/--std and --torch-mean/--torch-std)."
            )

    from onnxplain.checks import check_targets

    t = check_targets(job.target, n_images, job.onnx_model.num_classes)
    probs = np.asarray(job.onnx_model(batch), np.float64)
    targets = probs.argmax(1).astype(np.int64) if t is None else t
    step = job.metric_step or default_step(*batch.shape[2:])
    for name in job.metrics:
        metric_function(name)

    maps_dir = out / "maps"
    previous = read_json(out / "results.json")
    old_maps: dict[tuple[str, str], dict[str, Any]] = {}
    if isinstance(previous, dict) and previous.get("schema") == SCHEMA_VERSION:
        for im in previous.get("images", []):
            for mp in im.get("maps", []) if isinstance(im, dict) else []:
                if isinstance(mp, dict) and "settings_key" in mp:
                    old_maps[(im.get("name"), mp.get("method"))] = mp

    kinds = {**{m: "black-box" for m in job.blackbox}, **{m: "white-box" for m in job.whitebox}}
    explainers = {**job.blackbox, **job.whitebox}
    maps: dict[str, np.ndarray] = {m: np.zeros_like(batch) for m in explainers}
    records: dict[str, list[dict[str, Any]]] = {m: [] for m in explainers}
    reused = 0
    with item_progress(n_images * len(explainers), "maps", con.progress) as bar:
        for method, explainer in explainers.items():
            params = dict(getattr(explainer, "__dict__", {}))
            for i in range(n_images):
                name = job.names[i]
                npy = maps_dir / f"{name}.{method}.npy"
                skey = _settings_key(method, params, identity, int(targets[i]))
                old = old_maps.get((name, method))
                if not force and old is not None and old.get("settings_key") == skey and npy.is_file():
                    try:
                        a = np.load(npy, allow_pickle=False)
                    except (OSError, ValueError):
                        a = None
                    if a is not None and a.shape == batch[i].shape and np.isfinite(a).all():
                        maps[method][i] = a
                        records[method].append(old)
                        reused += 1
                        bar.update(1)
                        continue
                bar.set_postfix_str(f"{method} · {name}")
                if kinds[method] == "black-box":
                    budget = getattr(explainer, "n_queries", None) or getattr(explainer, "n_masks", None)
                    with QueryProgress(job.onnx_model, budget, f"{name} · {method}", con.progress):
                        exp = _explain_one(explainer, job.onnx_model, batch[i], int(targets[i]), method)
                else:
                    exp = _explain_one(explainer, job.torch_module, batch[i], int(targets[i]), method)
                maps[method][i] = exp.attributions
                write_npy(npy, np.asarray(exp.attributions, np.float32))
                d = exp.to_dict()
                records[method].append(
                    {
                        "method": method,
                        "kind": kinds[method],
                        "file": f"maps/{npy.name}",
                        "n_queries": int(d["n_queries"]),
                        "n_backward": int(d["n_backward"]),
                        "seconds": float(d["seconds"]),
                        "model_seconds": float(d["model_seconds"]),
                        "completeness_gap": d.get("completeness_gap"),
                        "baseline_score": d.get("baseline_score"),
                        "score": d.get("score"),
                        "params": d["params"],
                        "diagnostics": d["diagnostics"],
                        "settings_key": skey,
                    }
                )
                bar.update(1)

    con.say(f"evaluating {len(maps)} method(s) × {n_images} image(s) with {', '.join(job.metrics)} (step {step} px)")
    t0 = time.perf_counter()
    results = evaluate_all(job.onnx_model, batch, maps, targets, job.metrics, step=step, seed=job.seed)
    eval_seconds = time.perf_counter() - t0
    metric_info = []
    for name in job.metrics:
        first = next(iter(results.values()))[name]
        metric_info.append(MetricInfo(name, bool(first.higher_is_better), METRIC_DESCRIPTIONS.get(name, "")))

    images: list[ImageResult] = []
    doc_images: list[dict[str, Any]] = []
    for i in range(n_images):
        label = job.labels[int(targets[i])]
        order = np.argsort(-probs[i])[:3]
        top = [(job.labels[int(k)], float(probs[i, k])) for k in order]
        map_results, map_docs = [], []
        for method in explainers:
            rec = dict(records[method][i])
            scores = {name: float(np.asarray(results[method][name].per_image)[i]) for name in job.metrics}
            rec["metrics"] = scores
            map_docs.append(rec)
            a = maps[method][i]
            map_results.append(
                MapResult(
                    method=method,
                    kind=kinds[method],  # type: ignore[arg-type]
                    saliency=a.mean(axis=0),
                    metrics=scores,
                    n_queries=rec["n_queries"],
                    n_backward=rec["n_backward"],
                    seconds=rec["seconds"],
                    model_seconds=rec["model_seconds"],
                    completeness_gap=rec.get("completeness_gap"),
                    diagnostics={k: v for k, v in (rec.get("diagnostics") or {}).items() if np.isscalar(v)},
                )
            )
        curves = {}
        for name in job.metrics:
            by_method = {}
            for method in explainers:
                r = results[method][name]
                if r.curves is not None and r.x_axis is not None:
                    by_method[method] = (np.asarray(r.x_axis), np.asarray(r.curves)[i])
            if by_method:
                curves[name] = by_method
        agree_names, agree = agreement_matrix(maps, i) if len(maps) > 1 else ([], None)
        images.append(
            ImageResult(
                name=job.names[i],
                source=job.sources[i],
                image=batch[i],
                target=int(targets[i]),
                label=label,
                score=float(probs[i, targets[i]]),
                true_label=None if job.true_labels is None else job.true_labels[i],
                top=top,
                maps=map_results,
                curves=curves,
                agreement_methods=agree_names,
                agreement=agree,
            )
        )
        doc_images.append(
            {
                "name": job.names[i],
                "source": job.sources[i],
                "target": int(targets[i]),
                "label": label,
                "score": float(probs[i, targets[i]]),
                "true_label": None if job.true_labels is None else job.true_labels[i],
                "maps": map_docs,
                "agreement": {"measure": "spearman", "methods": agree_names,
                              "matrix": None if agree is None else agree.tolist()},
            }
        )

    summary = {
        method: {
            **{name: float(results[method][name].score) for name in job.metrics},
            "n_queries": int(sum(r["n_queries"] for r in records[method])),
            "n_backward": int(sum(r["n_backward"] for r in records[method])),
            "seconds": float(sum(r["seconds"] for r in records[method])),
            "kind": kinds[method],
        }
        for method in explainers
    }
    method_params = {m: to_jsonable(records[m][0]["params"]) for m in explainers if records[m]}
    settings = {**job.settings, "metric step (pixels)": step, "evaluation seconds": round(eval_seconds, 3)}
    report = ReportData(
        title=job.title,
        images=images,
        metrics=metric_info,
        settings=settings,
        method_params=method_params,
        model=job.model_info,
        parity=parity,
        command=job.command,
        notes=[] if parity is None or parity["ok"] else [
            "The ONNX and PyTorch models disagree (see Model parity): compare the maps with care."
        ],
    )
    doc = {
        "schema": SCHEMA_VERSION,
        "command": job.command_name,
        "model": job.model_info,
        "parity": parity,
        "settings": settings,
        "metrics": [
            {"name": m.name, "higher_is_better": m.higher_is_better,
             "params": to_jsonable(next(iter(results.values()))[m.name].params)}
            for m in metric_info
        ],
        "summary": summary,
        "images": doc_images,
        "report": "report.html",
    }
    for mi in doc["metrics"]:
        mi["params"].pop("targets", None)
    write_html(out / "report.html", report)
    write_json(out / "results.json", doc)

    headers = ["method", "kind", *job.metrics, "queries", "backward", "seconds"]
    rows = [
        (m, s["kind"], *(s[name] for name in job.metrics), s["n_queries"], s["n_backward"], s["seconds"])
        for m, s in summary.items()
    ]
    con.say(format_table(headers, rows))
    if reused:
        con.say(f"{reused} map(s) were reused from an earlier run with the same settings (use --force to redo).")
    con.say(f"report: {out / 'report.html'}")
    return doc
