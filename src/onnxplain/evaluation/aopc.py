"""Normalised AOPC by deletion, the GEEX paper's metric (Cai & Wunder 2024, §4.3, Table 1).

Protocol of the reference evaluation (``caiy0220/GEEX`` ``evaluation.py``, see
``reference/blackbox-methods.md`` §1.5), re-derived:

* the map is reduced over channels by its **signed mean** and pixels are sorted in descending
  order (stable; no absolute value);
* pixels are deleted cumulatively, all channels of a pixel at once, ``stride`` pixels between
  two queries; a deleted value comes from the *replacement*: the baseline (a constant or an
  array), Gaussian noise, or the Gaussian-blurred explicand;
* the curve is F_k = f_t(x with the top k·stride pixels deleted), k = 0..L,
  L = ⌈H·W·fraction/stride⌉, f_t the model output (softmax probability in the paper) of the
  class predicted on x;
* AOPC = (1/(L+1)) Σ_{k=0}^{L} (1 − F̄_k / F̄_0), **k = 0 included**, with F̄ the curve averaged
  over the explicands first (a ratio of means, ``aggregate="curves"``, what the reference and
  therefore Table 1 report). ``aggregate="images"`` gives the mean of per-image AOPCs instead.

The paper writes the sum over i = 1..l with 1/l; the reference code includes the k = 0 term
(which is 0) in a mean over L+1 points, i.e. it equals the paper's formula times L/(L+1).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.checks import (
    check_choice,
    check_optional_positive_int,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_seed,
)
from onnxplain.errors import InvalidInputError
from onnxplain.evaluation.ranking import (
    ChannelReduce,
    attribution_batch,
    descending_ranks,
    image_batch,
    perturbation_curves,
    ranking_keys,
    resolve_targets,
)
from onnxplain.evaluation.result import MetricResult
from onnxplain.filters import blur
from onnxplain.models.base import QueryModel, Target

Aggregate = Literal["curves", "images"]


def replacement_values(
    batch: np.ndarray,
    replacement: str | Any,
    *,
    baseline: Any = None,
    noise_std: float = 1.0,
    blur_size: int = 31,
    blur_sigma: float = 5.0,
    rng: np.random.Generator,
) -> np.ndarray:
    """The (B,C,H,W) values deleted features take.

    ``"baseline"``: the baseline (scalar, per-channel, (C,H,W) or (B,C,H,W); default 0);
    ``"gaussian"``: baseline + noise_std·N(0, 1), one independent draw per explicand and dimension;
    ``"blur"``: the explicand blurred with a (blur_size, blur_sigma) Gaussian; an array: used as is.
    """
    base = Baseline.parse(0.0 if baseline is None else baseline, blur_kernel=(blur_size, blur_sigma))
    if isinstance(replacement, str):
        if replacement == "baseline":
            return base.resolve(batch)
        if replacement == "gaussian":
            noise_std = check_positive_float("noise_std", noise_std)
            return (base.resolve(batch) + noise_std * rng.standard_normal(batch.shape)).astype(np.float32)
        if replacement == "blur":
            return blur(batch, blur_size, blur_sigma)
        raise InvalidInputError(
            f"replacement must be 'baseline', 'gaussian', 'blur' or an array, not {replacement!r}."
        )
    return Baseline.parse(replacement, what="replacement").resolve(batch)


def aopc_scores(curves: np.ndarray, aggregate: Aggregate) -> tuple[float, np.ndarray]:
    """(score, per-image AOPCs) from (B, L+1) deletion curves, see the module docstring."""
    if aggregate not in ("curves", "images"):
        raise InvalidInputError(f"aggregate must be 'curves' or 'images', not {aggregate!r}.")
    f0 = curves[:, :1]
    mean_curve = curves.mean(axis=0)
    if aggregate == "curves" and not mean_curve[0] > 0:
        raise InvalidInputError(
            "normalised AOPC divides by the mean f(x), which is not positive; score a model with output='probs'."
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        per_image = np.mean(1.0 - curves / f0, axis=1)
    if aggregate == "images":
        if not (f0 > 0).all():
            raise InvalidInputError(
                "per-image AOPC divides by f(x), which is not positive for some explicand; "
                "score a model with output='probs'."
            )
        return float(per_image.mean()), per_image
    return float(np.mean(1.0 - mean_curve / mean_curve[0])), per_image


def aopc_deletion(
    model: QueryModel,
    x: Any,
    attributions: Any,
    *,
    target: Target = None,
    replacement: str | Any = "baseline",
    baseline: Any = None,
    stride: int = 1,
    reduce: ChannelReduce = "mean",
    aggregate: Aggregate = "curves",
    fraction: float = 1.0,
    noise_std: float = 1.0,
    blur_size: int = 31,
    blur_sigma: float = 5.0,
    seed: int = 0,
    batch_size: int | None = None,
) -> MetricResult:
    """Normalised AOPC of deleting pixels in the order of ``attributions`` (higher is better).

    Args:
        model: any QueryModel; the paper scores softmax probabilities (``output="probs"``).
        x: one explicand (C,H,W) or a batch (B,C,H,W) in the model's input space.
        attributions: map(s) of x's shape, one-channel maps, or an :class:`Explanation`.
        target: explained class(es); ``None`` = the Explanation's target, else the top class on x.
        replacement: ``"baseline"``, ``"gaussian"``, ``"blur"`` or an array (see
            :func:`replacement_values`). In the paper's normalised MNIST units "baseline" is 0 and
            the Gaussian is N(0, 1): pass ``baseline``/``noise_std`` in the model's input space.
        baseline: replacement value (and Gaussian mean); default 0.
        stride: pixels deleted between two queries (the reference's MNIST run uses 10).
        reduce: channel reduction of the map before ranking; ``"mean"`` (signed) as the reference.
        aggregate: ``"curves"`` (reference, ratio of means) or ``"images"`` (mean of per-image AOPCs).
        fraction: share of the pixels deleted by the end of the curve (the reference's ``del_ratio``).
        seed: seeds the Gaussian replacement (``numpy.random.default_rng(seed)``).
        batch_size: images per model call; default ``preferred_batch_size(model)``.

    Returns:
        MetricResult with the mean curve F̄_k, per-image curves and per-image AOPCs.
    """
    batch, single = image_batch(model, x)
    a = attribution_batch(attributions, batch.shape, single)
    fraction = check_probability("fraction", fraction)
    stride = check_positive_int("stride", stride)
    check_choice("aggregate", aggregate, ("curves", "images"))
    check_optional_positive_int("batch_size", batch_size)
    rng = np.random.default_rng(check_seed(seed))
    values = replacement_values(
        batch,
        replacement,
        baseline=baseline,
        noise_std=noise_std,
        blur_size=blur_size,
        blur_sigma=blur_sigma,
        rng=rng,
    )
    _, c, h, w = batch.shape
    n = h * w
    n_steps = int(np.ceil(n * fraction / stride))
    counts = np.minimum(np.arange(n_steps + 1, dtype=np.int64) * int(stride), n)
    ranks = descending_ranks(ranking_keys(a, c, "pixel", reduce))
    targets, n_target_queries = resolve_targets(model, batch, target, attributions, then=len(batch) * len(counts))
    curves = perturbation_curves(
        model, batch, ranks, counts, start=batch, source=values, targets=targets, batch_size=batch_size
    )
    score, per_image = aopc_scores(curves, aggregate)
    kind = replacement if isinstance(replacement, str) else "array"
    return MetricResult(
        name="aopc_deletion",
        score=score,
        higher_is_better=True,
        curve=curves.mean(axis=0),
        x_axis=counts / n,
        curves=curves,
        per_image=per_image,
        params={
            "replacement": kind,
            "baseline": 0.0 if baseline is None else _describe(baseline),
            "noise_std": noise_std if kind == "gaussian" else None,
            "blur": (blur_size, blur_sigma) if kind == "blur" else None,
            "stride": int(stride),
            "fraction": float(fraction),
            "n_points": int(n_steps + 1),
            "reduce": reduce,
            "aggregate": aggregate,
            "ranking": "pixel, descending signed",
            "seed": seed,
            "targets": targets,
            "n_images": len(batch),
        },
        n_queries=int(curves.size + n_target_queries),
    )


def _describe(value: Any) -> Any:
    v = np.asarray(value)
    return float(v) if v.ndim == 0 else f"array{tuple(v.shape)}"
