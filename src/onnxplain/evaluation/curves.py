"""Insertion / deletion AUC (Petsiuk et al. 2018, RISE §4; as used by AGI, AttEXplore and LA).

Features are ranked by the signed attribution, descending (no absolute value). Deletion starts
from x and replaces ``step`` pixels per point by the substrate; insertion starts from the
substrate and restores ``step`` pixels of x per point. The score is the model output for the
class predicted on x (softmax probability in all reference codes), the curve has
n_steps + 1 = ⌈n_features / step_features⌉ + 1 points, and

    AUC = (Σ_k s_k − s_0/2 − s_L/2) / L          (trapezoid on x ∈ [0, 1], RISE ``auc``)

computed on the mean curve over explicands (equal to the mean of per-image AUCs: it is linear).

Two ranking modes, never to be mixed in one table (``reference/whitebox-methods.md`` §5):

* ``mode="pixel"``: the map is reduced over channels (signed mean) and H·W pixels are ranked;
  a step changes ``step`` pixels in all C channels. The fair mode for comparing black-box
  one-channel maps with white-box maps.
* ``mode="dimension"``: LA's corrected evaluation; all C·H·W dimensions are ranked jointly and a
  step changes exactly C·``step`` dimensions, each in its own channel. One-channel maps are
  broadcast to C channels first.

The substrate is ``"zero"`` (black in [0,1] pixel space; LA/AttEXplore use it for both curves),
``"blur"`` (RISE's insertion substrate: Gaussian σ = 5 truncated to 11×11; padding here is
mirror, not RISE's zero padding) or any scalar/array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.checks import check_optional_positive_int, check_positive_int
from onnxplain.evaluation.ranking import (
    ChannelReduce,
    RankMode,
    attribution_batch,
    descending_ranks,
    image_batch,
    perturbation_curves,
    ranking_keys,
    resolve_targets,
    trapezoid_auc,
)
from onnxplain.evaluation.result import MetricResult
from onnxplain.models.base import QueryModel, Target


def substrate_values(
    batch: np.ndarray, substrate: str | Any, *, blur_size: int = 11, blur_sigma: float = 5.0
) -> np.ndarray:
    """(B,C,H,W) substrate: ``"zero"``, ``"blur"`` (of each explicand) or a scalar/array."""
    return Baseline.parse(substrate, blur_kernel=(blur_size, blur_sigma), what="substrate").resolve(batch)


def _curve_metric(
    name: str,
    insertion: bool,
    model: QueryModel,
    x: Any,
    attributions: Any,
    *,
    target: Target,
    step: int | None,
    substrate: str | Any,
    mode: RankMode,
    reduce: ChannelReduce,
    blur_size: int,
    blur_sigma: float,
    batch_size: int | None,
) -> MetricResult:
    batch, single = image_batch(model, x)
    a = attribution_batch(attributions, batch.shape, single)
    _, c, h, w = batch.shape
    step = w if step is None else check_positive_int("step", step)
    check_optional_positive_int("batch_size", batch_size)
    keys = ranking_keys(a, c, mode, reduce)
    features_per_step = int(step) * (c if mode == "dimension" else 1)
    n_features = keys.shape[1]
    n_steps = -(-n_features // features_per_step)
    counts = np.minimum(np.arange(n_steps + 1, dtype=np.int64) * features_per_step, n_features)
    sub = substrate_values(batch, substrate, blur_size=blur_size, blur_sigma=blur_sigma)
    ranks = descending_ranks(keys)
    targets, n_target_queries = resolve_targets(model, batch, target, attributions, then=len(batch) * len(counts))
    start, source = (sub, batch) if insertion else (batch, sub)
    curves = perturbation_curves(
        model, batch, ranks, counts, start=start, source=source, targets=targets, batch_size=batch_size
    )
    per_image = trapezoid_auc(curves)
    return MetricResult(
        name=name,
        score=float(trapezoid_auc(curves.mean(axis=0))),
        higher_is_better=insertion,
        curve=curves.mean(axis=0),
        x_axis=counts / n_features,
        curves=curves,
        per_image=per_image,
        params={
            "step": int(step),
            "features_per_step": features_per_step,
            "n_points": int(n_steps + 1),
            "substrate": substrate if isinstance(substrate, str) else "array",
            "blur": (blur_size, blur_sigma) if isinstance(substrate, str) and substrate == "blur" else None,
            "mode": mode,
            "reduce": reduce,
            "ranking": "descending signed",
            "auc": "trapezoid on the mean curve, x in [0, 1]",
            "targets": targets,
            "n_images": len(batch),
        },
        n_queries=int(curves.size + n_target_queries),
    )


def deletion_auc(
    model: QueryModel,
    x: Any,
    attributions: Any,
    *,
    target: Target = None,
    step: int | None = None,
    substrate: str | Any = "zero",
    mode: RankMode = "pixel",
    reduce: ChannelReduce = "mean",
    blur_size: int = 11,
    blur_sigma: float = 5.0,
    batch_size: int | None = None,
) -> MetricResult:
    """Deletion AUC (lower is better): replace the top-ranked features by the substrate.

    Args:
        model: any QueryModel (reference codes score softmax probabilities).
        x: one explicand (C,H,W) or a batch (B,C,H,W).
        attributions: map(s) of x's shape, one-channel maps, or an :class:`Explanation`.
        target: explained class(es); ``None`` = the Explanation's target, else the top class on x.
        step: pixels per step (default W, one image row's worth: H steps for a square image);
            ``mode="dimension"`` changes C·step dimensions per step.
        substrate: ``"zero"`` (default), ``"blur"`` or a scalar/array.
        mode: ``"pixel"`` or ``"dimension"`` (see the module docstring).
        reduce: channel reduction for ``mode="pixel"`` (signed ``"mean"`` by default).
        batch_size: images per model call; default ``preferred_batch_size(model)``.
    """
    return _curve_metric(
        "deletion_auc",
        False,
        model,
        x,
        attributions,
        target=target,
        step=step,
        substrate=substrate,
        mode=mode,
        reduce=reduce,
        blur_size=blur_size,
        blur_sigma=blur_sigma,
        batch_size=batch_size,
    )


def insertion_auc(
    model: QueryModel,
    x: Any,
    attributions: Any,
    *,
    target: Target = None,
    step: int | None = None,
    substrate: str | Any = "zero",
    mode: RankMode = "pixel",
    reduce: ChannelReduce = "mean",
    blur_size: int = 11,
    blur_sigma: float = 5.0,
    batch_size: int | None = None,
) -> MetricResult:
    """Insertion AUC (higher is better): restore the top-ranked features of x onto the substrate.

    Arguments as :func:`deletion_auc`; RISE's own insertion substrate is ``"blur"``, the LA and
    AttEXplore tables use ``"zero"`` (the default here).
    """
    return _curve_metric(
        "insertion_auc",
        True,
        model,
        x,
        attributions,
        target=target,
        step=step,
        substrate=substrate,
        mode=mode,
        reduce=reduce,
        blur_size=blur_size,
        blur_sigma=blur_sigma,
        batch_size=batch_size,
    )
