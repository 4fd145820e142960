"""Completeness gap: how far Σ attributions is from f(x) − f(x̂).

Completeness (Sundararajan et al. 2017, IG axiom; Cai & Wunder 2024, Theorem 3.2 for GEEX)
demands Σ_i ξ_i = f(x) − f(x̂). The gap Σ ξ − (f(x) − f(x̂)) is IG's convergence delta.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.errors import InvalidInputError
from onnxplain.evaluation.ranking import image_batch
from onnxplain.evaluation.result import MetricResult
from onnxplain.explanation import Explanation
from onnxplain.models.base import QueryModel, check_budget


def completeness_gap(
    explanation: Explanation,
    model: QueryModel | None = None,
    x: Any = None,
    *,
    baseline: Any = 0.0,
) -> MetricResult:
    """Mean |Σ ξ − (f(x) − f(x̂))| over explicands (lower is better).

    With ``model`` and ``x`` the two scores are queried from ``model`` (2 queries per explicand),
    so a map computed on one backend (e.g. torch) can be checked against the deployed model
    (e.g. ONNX) with the baseline ``baseline`` (scalar, per-channel or array; default 0). Without
    them the scores the explainer recorded (``score``, ``baseline_score``) are used.

    Returns:
        MetricResult with ``per_image`` the signed gaps and ``params["relative_gap"]`` the
        per-image |gap| / |f(x) − f(x̂)|.
    """
    if not isinstance(explanation, Explanation):
        raise InvalidInputError("completeness_gap needs an Explanation (it reads its target and scores).")
    attributions = explanation.attributions
    targets = np.atleast_1d(np.asarray(explanation.target, dtype=np.int64))
    if model is not None:
        if x is None:
            raise InvalidInputError("completeness_gap with a model also needs the explicand x.")
        batch, _ = image_batch(model, x)
        if len(batch) != len(targets):
            raise InvalidInputError(
                f"x holds {len(batch)} explicands but the explanation explains {len(targets)}."
            )
        if tuple(np.shape(attributions))[-3:] != batch.shape[1:]:
            raise InvalidInputError(
                f"attributions of shape {np.shape(attributions)} do not match x of shape {batch.shape}."
            )
        base = Baseline.parse(baseline).resolve(batch)
        check_budget(model, 2 * len(batch))
        out = np.asarray(model(np.concatenate([batch, base])), dtype=np.float64)
        rows = np.arange(len(batch))
        fx = out[rows, targets]
        fb = out[len(batch) + rows, targets]
        source, n_queries = "model", 2 * len(batch)
    else:
        if explanation.baseline_score is None:
            raise InvalidInputError(
                "this explanation records no baseline score; pass the model and x to query f(x) and f(x̂)."
            )
        fx = np.atleast_1d(np.asarray(explanation.score, dtype=np.float64))
        fb = np.atleast_1d(np.asarray(explanation.baseline_score, dtype=np.float64))
        source, n_queries = "recorded", 0
    totals = np.asarray(attributions, dtype=np.float64).reshape(len(targets), -1).sum(axis=1)
    diff = fx - fb
    gaps = totals - diff
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(gaps) / np.abs(diff)
    return MetricResult(
        name="completeness_gap",
        score=float(np.mean(np.abs(gaps))),
        higher_is_better=False,
        per_image=gaps,
        params={
            "source": source,
            "baseline": float(np.asarray(baseline)) if np.ndim(baseline) == 0 else "array",
            "relative_gap": relative,
            "f_x": fx,
            "f_baseline": fb,
            "method": explanation.method,
        },
        n_queries=n_queries,
    )
