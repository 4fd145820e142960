"""From the stored records to rows: per-photo values (seeds averaged), means ± standard errors.

* AOPC (paper protocol): the authors' aggregate over photos, 1 − F̄_k/F̄_0 averaged over k with F̄
  the mean curve (a ratio of means); its ± is the **jackknife** standard error over photos
  (leave one photo out, recompute the aggregate: √((n−1)/n · Σ (θ₋ᵢ − θ̄)²)).
* Every other column: the mean over photos ± the standard error s/√n (for a mean the jackknife
  gives exactly this).

With several seeds, each photo's values (and AOPC curve) are first averaged over the seeds.
Only records whose method configuration and metric protocol are the current ones count, and
agreements only if measured against the photo's current reference map.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.fidelity import metrics as fm
from benchmarks.fidelity.methods import REFERENCE, Spec
from benchmarks.fidelity.store import Item, WorkDir, digest

SCALAR = ("aopc", "insertion", "deletion")


@dataclass
class Row:
    """One (method, budget) of one model, aggregated over photos."""

    key: str
    label: str
    kind: str
    budget: int | None
    per_photo: dict[str, dict[str, Any]] = field(default_factory=dict)  # photo -> seed-averaged values

    @property
    def n(self) -> int:
        return len(self.per_photo)

    def values(self, name: str, scale: str | None = None, measure: str | None = None) -> np.ndarray:
        """Per-photo values of a scalar metric, or of an agreement measure at a scale (NaN if absent)."""
        out = []
        for rec in self.per_photo.values():
            if scale is None:
                out.append(rec.get(name, np.nan))
            else:
                out.append((rec.get("agreement", {}).get(scale) or {}).get(measure, np.nan))
        return np.asarray([np.nan if v is None else v for v in out], dtype=np.float64)

    def mean_se(self, name: str, scale: str | None = None, measure: str | None = None) -> tuple[float, float]:
        return mean_se(self.values(name, scale, measure))

    def aopc(self) -> tuple[float, float]:
        """The authors' aggregate AOPC over photos and its jackknife standard error."""
        curves = np.asarray([rec["aopc_curve"] for rec in self.per_photo.values() if "aopc_curve" in rec])
        if len(curves) == 0:
            return float("nan"), float("nan")
        return aopc_of_curves(curves), jackknife(aopc_of_curves, curves)

    def to_dict(self) -> dict[str, Any]:
        aopc, aopc_se = self.aopc()
        out: dict[str, Any] = {"method": self.key, "budget": self.budget, "n_photos": self.n}
        out["aopc"], out["aopc_se"] = aopc, aopc_se
        for name in ("insertion", "deletion", "seconds", "n_queries", "n_backward"):
            out[name], out[f"{name}_se"] = self.mean_se(name)
        for scale in {s for rec in self.per_photo.values() for s in rec.get("agreement", {})}:
            for measure in ("spearman", "top10", "cosine"):
                out[f"{measure}@{scale}"], out[f"{measure}@{scale}_se"] = self.mean_se("", scale, measure)
        out["per_photo"] = self.per_photo
        return out


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error s/√n of the finite values (NaN when there are none; se NaN for one)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def aopc_of_curves(curves: np.ndarray) -> float:
    """The authors' AOPC of (n, L+1) deletion curves: mean_k (1 − F̄_k / F̄_0), F̄ = mean over photos."""
    mean = np.asarray(curves, dtype=np.float64).mean(axis=0)
    return float(np.mean(1.0 - mean / mean[0]))


def jackknife(statistic: Any, data: np.ndarray) -> float:
    """Jackknife standard error of ``statistic`` over the rows of ``data`` (NaN for fewer than 2)."""
    n = len(data)
    if n < 2:
        return float("nan")
    loo = np.asarray([statistic(np.delete(data, i, axis=0)) for i in range(n)])
    return float(np.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2)))


def _average(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One photo's values averaged over its seeds."""
    out: dict[str, Any] = {}
    for name in (*SCALAR, "seconds", "n_queries", "n_backward"):
        vals = [r[name] for r in records if r.get(name) is not None]
        if vals:
            out[name] = float(np.mean(vals))
    curves = [r["aopc_curve"] for r in records if "aopc_curve" in r]
    if curves:
        out["aopc_curve"] = np.mean(np.asarray(curves, dtype=np.float64), axis=0).tolist()
    scales: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for scale, measures in (r.get("agreement") or {}).items():
            for measure, value in measures.items():
                if value is not None:
                    scales[scale][measure].append(value)
    if scales:
        out["agreement"] = {s: {m: float(np.mean(v)) for m, v in ms.items()} for s, ms in scales.items()}
    out["seeds"] = len(records)
    return out


def collect(plan: Any, model: str, shape: tuple[int, int]) -> list[Row]:
    """The rows of one model from the work directory (in the plan's method and budget order)."""
    work = WorkDir(plan.work)
    protocol = fm.protocol(*shape)
    refs = {p: _reference_digest(work, plan.reference(model, p), plan.specs) for p in plan.photos}
    rows = []
    for spec in plan.specs:
        for budget in spec.budgets(plan.budgets):
            row = Row(spec.key, spec.label, spec.kind, budget)
            for photo in plan.photos:
                records = []
                for seed in spec.seeds(plan.seeds):
                    rec = _record(
                        work, Item(model, photo, spec.key, budget, seed), spec, protocol, refs[photo]
                    )
                    if rec is not None:
                        records.append(rec)
                if records:
                    row.per_photo[photo] = _average(records)
            rows.append(row)
    return rows


def _reference_digest(work: WorkDir, item: Item, specs: tuple[Spec, ...]) -> str | None:
    spec = next((s for s in specs if s.key == REFERENCE), None)
    if spec is None or not work.has_map(item, spec.config(None, None)):
        return None
    return digest(work.load_map(item))


def _record(
    work: WorkDir, item: Item, spec: Spec, protocol: dict[str, Any], ref: str | None
) -> dict[str, Any] | None:
    if not work.has_map(item, spec.config(item.budget, item.seed)):
        return None
    stale_curves, stale_agreement = work.stale(item, protocol, ref)
    rec = work.record(item) or {}
    info, stored = rec.get("info", {}), rec.get("metrics", {})
    out: dict[str, Any] = {k: info.get(k) for k in ("seconds", "n_queries", "n_backward")}
    if not stale_curves:
        out.update({k: v for k, v in stored["curves"].items() if k != "metric_queries"})
    if ref is not None and not stale_agreement:
        out["agreement"] = stored["agreement"]
    return out
