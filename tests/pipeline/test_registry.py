"""The registry's declared metadata: how options reach methods and metrics without any signature."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError
from onnxplain.models.base import FunctionModel
from onnxplain.registry import (
    METRICS,
    build_method,
    check_kind,
    get_metric,
    is_signed,
    method_kwargs,
)


def test_method_kwargs_follow_each_family_declaration():
    assert method_kwargs("geex", budget=10, seed=3, batch_size=8, baseline="blur") == {
        "n_queries": 10, "seed": 3, "queries_per_call": 8, "baseline": "blur"}
    assert method_kwargs("rise", budget=10, batch_size=8, baseline=0.5) == {
        "n_masks": 10, "queries_per_call": 8, "baseline": 0.5}
    assert method_kwargs("lime", budget=10, seed=1, baseline=0.5) == {"n_samples": 10, "seed": 1}  # no baseline
    assert method_kwargs("ig", budget=10, seed=3, batch_size=8, baseline="blur") == {
        "steps": 10, "batch_size": 8, "baseline": "blur"}  # IG draws nothing: no seed
    assert method_kwargs("smoothgrad", budget=10, seed=3) == {"samples": 10, "seed": 3}
    assert method_kwargs("saliency", budget=10, seed=3, extra={"abs": True}) == {"abs": True}  # no budget
    assert method_kwargs("attexplore", budget=5, extra={"steps": 20, "n_approx": 10}) == {"steps": 5, "n_approx": 10}
    geex = build_method("geex", kind="black-box", budget=12, seed=2, batch_size=4)
    assert (geex.n_queries, geex.seed, geex.queries_per_call) == (12, 2, 4)


def test_kinds_and_signs():
    with pytest.raises(InvalidInputError, match="white-box method"):
        check_kind("ig", "black-box")
    with pytest.raises(InvalidInputError, match="black-box method"):
        check_kind("rise", "white-box")
    with pytest.raises(InvalidInputError, match="unknown method"):
        check_kind("shapley", None)
    assert not is_signed("rise") and is_signed("geex") and is_signed("ig")
    with pytest.raises(InvalidInputError, match="unknown metric"):
        get_metric("vibes")


@pytest.mark.parametrize("name", ["aopc_deletion", "insertion_auc", "deletion_auc", "infidelity"])
def test_metric_metadata_matches_the_metric(name):
    """Direction and query cost as declared = what the metric reports; the step reaches its parameter."""
    model = FunctionModel(lambda z: np.stack([z.sum((1, 2, 3)), 1 - z.mean((1, 2, 3))], 1), (1, 6, 5), 2,
                          output="raw")
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 6, 5)).astype(np.float32) + 0.1
    maps = rng.normal(size=x.shape)
    metric = METRICS[name]
    result = metric(model, x, maps, target=np.zeros(2, np.int64), step=7, seed=1)
    assert result.name == name and result.higher_is_better is metric.higher_is_better
    assert result.n_queries == 2 * metric.queries_per_explicand((1, 6, 5), 7)  # targets given: no extra query
    if metric.step_param is not None:
        assert result.params[metric.step_param] == 7
        assert metric.queries_per_explicand((1, 6, 5), 7) == 6  # ⌈30/7⌉ + 1 points
