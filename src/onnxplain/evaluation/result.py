"""The result type every evaluation metric returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onnxplain._io import to_jsonable


@dataclass(frozen=True)
class MetricResult:
    """One metric evaluated on one explicand or a batch of them.

    Attributes:
        name: metric name, e.g. ``"aopc_deletion"``, ``"insertion_auc"``.
        score: the aggregate value (one float for the whole batch).
        higher_is_better: how to read ``score`` (every metric declares it, as in Quantus).
        curve: the batch-mean perturbation curve, shape (L+1,), or ``None`` for curve-free metrics.
        x_axis: fraction of features changed at each curve point (same length as ``curve``).
        curves: per-explicand curves, shape (B, L+1), or ``None``.
        per_image: per-explicand scores, shape (B,), or ``None``.
        params: the protocol actually used (step, substrate, ranking mode, seed, ...).
        n_queries: samples forwarded through the model for this metric.
    """

    name: str
    score: float
    higher_is_better: bool
    curve: np.ndarray | None = None
    x_axis: np.ndarray | None = None
    curves: np.ndarray | None = None
    per_image: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    n_queries: int = 0

    def __float__(self) -> float:
        return float(self.score)

    def to_dict(self, *, with_curves: bool = False) -> dict[str, Any]:
        """JSON-ready record; per-image curves only if ``with_curves``."""
        out: dict[str, Any] = {
            "name": self.name,
            "score": float(self.score),
            "higher_is_better": self.higher_is_better,
            "params": to_jsonable(self.params),
            "n_queries": int(self.n_queries),
        }
        for key in ("curve", "x_axis", "per_image"):
            value = getattr(self, key)
            if value is not None:
                out[key] = to_jsonable(value)
        if with_curves and self.curves is not None:
            out["curves"] = to_jsonable(self.curves)
        return out
