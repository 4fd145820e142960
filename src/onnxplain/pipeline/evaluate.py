"""Query-only metrics of every method's maps, the agreement between methods, and the one summary.

Each metric is called through its :class:`~onnxplain.registry.Metric` entry (declared step
parameter, seed, direction), once per method on the whole batch, and its ``MetricResult.score``
(the metric's own aggregation over the images, e.g. AOPC's ratio of mean curves) is *the* score
of that method: the terminal table, ``results.json`` and the report's summary all show it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain.checks import check_targets
from onnxplain.errors import InvalidInputError
from onnxplain.evaluation.agreement import DEFAULT_SCALES, SCALE_MEASURES, agreement_scales, scale_label
from onnxplain.evaluation.result import MetricResult
from onnxplain.pipeline.cache import read_json
from onnxplain.registry import get_metric

MEASURE_TITLES = {"spearman": "Spearman", "top10%": "top-10 % intersection"}


def default_step(height: int, width: int) -> int:
    """Pixels changed per curve step: about 100 points per curve (MNIST 28×28: 8 px, 224×224: 502 px)."""
    return max(1, math.ceil(height * width / 100))


def evaluate_maps(
    model: Any,
    batch: np.ndarray,
    maps: dict[str, np.ndarray],
    targets: np.ndarray,
    metric_names: Sequence[str],
    *,
    step: int,
    seed: int,
    batch_size: int | None = None,
) -> dict[str, dict[str, MetricResult]]:
    """``{method: {metric: MetricResult}}``, each metric run once per method on the whole batch."""
    metrics = [get_metric(name) for name in metric_names]
    return {
        method: {
            m.name: m(model, batch, a, target=targets, step=step, seed=seed, batch_size=batch_size) for m in metrics
        }
        for method, a in maps.items()
    }


def summarise(results: dict[str, dict[str, MetricResult]]) -> dict[str, dict[str, float]]:
    """``{method: {metric: score}}``: the one aggregation of every metric (``MetricResult.score``)."""
    return {method: {name: float(r.score) for name, r in by_metric.items()} for method, by_metric in results.items()}


def agreement_tables(maps: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """``{scale: {measure: (B, M, M)}}``: Spearman and top-10 % intersection between every pair of
    methods' maps of each explicand, at pixels, 28×28 and 14×14 (1 on the diagonal, NaN where a
    measure is undefined, e.g. a constant map)."""
    names = list(maps)
    b = len(next(iter(maps.values()))) if maps else 0
    out = {
        scale_label(s): {m: np.tile(np.eye(len(names)), (b, 1, 1)) for m in SCALE_MEASURES} for s in DEFAULT_SCALES
    }
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            for scale, by_measure in agreement_scales(maps[names[i]], maps[names[j]]).items():
                for measure, result in by_measure.items():
                    out[scale][measure][:, i, j] = out[scale][measure][:, j, i] = result.per_image
    return out


def mean_over_images(matrices: np.ndarray) -> np.ndarray:
    """NaN-aware mean of (B, M, M) agreement matrices (how the terminal and the report average them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN cell stays NaN
        return np.nanmean(matrices, axis=0)


def agreement_rows(names: list[str], kinds: dict[str, str], tables: dict[str, dict[str, np.ndarray]]) -> list[tuple]:
    """Rows ``(method a, method b, value per (measure, scale)...)`` of the mean agreement: black-box
    against white-box pairs when both kinds are present, else every pair."""
    mean = {s: {m: mean_over_images(v) for m, v in by.items()} for s, by in tables.items()}
    mixed = len(set(kinds.values())) > 1
    rows = []
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            if mixed and kinds[a] == kinds[names[j]]:
                continue
            rows.append((a, names[j], *(float(mean[s][m][i, j]) for m in SCALE_MEASURES for s in mean)))
    return rows


def agreement_headers(tables: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Column titles matching :func:`agreement_rows`."""
    return [f"{'rho' if m == 'spearman' else m} {s}" for m in SCALE_MEASURES for s in tables]


# -- maps saved by an earlier run -------------------------------------------------------------------
def saved_maps(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """``{method: [{image, target, npy}]}`` from the ``results.json`` of ``explain`` or ``compare``."""
    if not directory.is_dir():
        raise InvalidInputError(f"attributions directory {str(directory)!r} does not exist or is not a directory.")
    doc = read_json(directory / "results.json")
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{str(directory)!r} has no readable results.json (write it with 'onnxplain explain').")
    entries = []
    if doc.get("command") == "explain":
        entries = [{"image": r["image"], "method": r["method"], "target": int(r["target"]),
                    "npy": directory / r["files"]["npy"]} for r in doc.get("results", [])]
    elif "images" in doc:
        entries = [{"image": im["source"], "method": mp["method"], "target": int(im["target"]),
                    "npy": directory / mp["file"]} for im in doc["images"] for mp in im.get("maps", [])]
    if not entries:
        raise InvalidInputError(f"results.json in {str(directory)!r} lists no maps.")
    by_method: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        if not Path(e["image"]).is_file():
            raise InvalidInputError(f"image {e['image']!r} listed in results.json does not exist any more.")
        if not e["npy"].is_file():
            raise InvalidInputError(f"map {str(e['npy'])!r} listed in results.json does not exist.")
        by_method.setdefault(e["method"], []).append(e)
    return by_method


def evaluate_saved(
    model: Any, directory: Path, metric_names: Sequence[str], *, step: int | None, seed: int,
    batch_size: int | None = None, source: str = "",
) -> dict[str, Any]:
    """Every metric of every saved map in ``directory``, by method: the ``evaluation.json`` document."""
    from onnxplain.images import load_image

    for name in metric_names:
        get_metric(name)
    methods: dict[str, Any] = {}
    for method, items in saved_maps(directory).items():
        x = np.stack([load_image(e["image"], model.input_shape) for e in items])
        try:
            a = np.stack([np.load(e["npy"], allow_pickle=False) for e in items]).astype(np.float32)
        except ValueError as exc:
            raise InvalidInputError(f"the saved {method} maps have different shapes ({exc}).") from None
        if a.shape != x.shape:
            raise InvalidInputError(f"the saved {method} maps have shape {a.shape[1:]}; the model takes {x.shape[1:]}.")
        targets = check_targets([e["target"] for e in items], len(items), model.num_classes)
        step = step or default_step(*x.shape[2:])
        results = evaluate_maps(model, x, {method: a}, targets, metric_names, step=step, seed=seed,
                                batch_size=batch_size)[method]
        records = {name: r.to_dict() for name, r in results.items()}
        for r in records.values():
            r["params"].pop("targets", None)
        methods[method] = {"images": [e["image"] for e in items], "metrics": records}
    return {"schema": 1, "command": "evaluate", "model": source, "attributions": str(directory),
            "metric_step": step, "methods": methods}
