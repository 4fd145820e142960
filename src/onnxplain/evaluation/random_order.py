"""The "Random" reference of a curve metric: the same protocol with features in random order."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from onnxplain.checks import check_seed
from onnxplain.errors import InvalidInputError
from onnxplain.evaluation.aopc import aopc_deletion
from onnxplain.evaluation.curves import deletion_auc, insertion_auc
from onnxplain.evaluation.ranking import image_batch
from onnxplain.evaluation.result import MetricResult
from onnxplain.models.base import QueryModel, Target

CURVE_METRICS: dict[str, Callable[..., MetricResult]] = {
    "aopc_deletion": aopc_deletion,
    "deletion_auc": deletion_auc,
    "insertion_auc": insertion_auc,
}


def random_order_reference(
    metric: str | Callable[..., MetricResult],
    model: QueryModel,
    x: Any,
    *,
    target: Target = None,
    seed: int = 0,
    **metric_kwargs: Any,
) -> MetricResult:
    """Run a curve metric with a uniformly random feature order per explicand (Table 1's "Random").

    The order comes from i.i.d. uniform keys drawn from ``numpy.random.default_rng([seed, 1])``
    (ties have probability 0, so the order is a uniform permutation): over H·W pixels for
    ``mode="pixel"`` and the AOPC, over C·H·W dimensions for ``mode="dimension"``. ``seed`` is
    also passed on to metrics that take one (the AOPC's Gaussian replacement), so the random
    reference sees the same replacement values as the explainers it is compared with.

    Args:
        metric: ``"aopc_deletion"``, ``"deletion_auc"``, ``"insertion_auc"`` or one of those functions.
        model, x, target: as for the metric.
        seed: seed of the random order.
        **metric_kwargs: the metric's own options (stride, replacement, step, substrate, mode, ...).
    """
    if isinstance(metric, str):
        if metric not in CURVE_METRICS:
            raise InvalidInputError(f"metric must be one of {', '.join(CURVE_METRICS)}, not {metric!r}.")
        fn = CURVE_METRICS[metric]
    elif metric in CURVE_METRICS.values():
        fn = metric
    else:
        raise InvalidInputError(f"random_order_reference supports {', '.join(CURVE_METRICS)} only.")
    seed = check_seed(seed)
    taken = set(inspect.signature(fn).parameters) - {"model", "x", "attributions", "target"}
    unknown = sorted(set(metric_kwargs) - taken)
    if unknown:
        raise InvalidInputError(f"{fn.__name__} takes no option {', '.join(map(repr, unknown))}.")
    batch, _ = image_batch(model, x)
    b, c, h, w = batch.shape
    channels = c if metric_kwargs.get("mode", "pixel") == "dimension" else 1
    keys = np.random.default_rng([seed, 1]).random((b, channels, h, w))
    if fn is aopc_deletion:
        metric_kwargs["seed"] = seed
    result = fn(model, batch, keys, target=target, **metric_kwargs)
    return dataclasses.replace(
        result,
        name=f"{result.name}[random]",
        params={**result.params, "ranking": "uniformly random order", "order_seed": seed},
    )
