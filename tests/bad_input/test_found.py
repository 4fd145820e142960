"""Regression tests of what the property tests found, each pinned to its smallest example."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from onnxplain.blackbox.gefa import GEFA
from onnxplain.blackbox.lime import LIME, solve_ridge
from onnxplain.errors import InvalidInputError
from onnxplain.gradients import AttEXplore
from onnxplain.models.base import FunctionModel
from tests.bad_input.env import CLASSES, SHAPE, CountingFn


@pytest.mark.parametrize("param", ["reject_extremes", "smoothing"])
def test_gefa_refuses_an_array_where_auto_or_a_flag_is_due(param: str) -> None:
    # was: ValueError "truth value of an array is ambiguous" from comparing the array with "auto"
    with pytest.raises(InvalidInputError, match=param):
        GEFA(n_queries=8, **{param: np.zeros((3, 5, 5))})


@pytest.mark.parametrize("value", [np.zeros(3), 0, 1, "yes"])
def test_attexplore_input_diversity_takes_flags_and_names_only(value: object) -> None:
    # was: ValueError for an array; 0 and 1 slipped through as ints (equal to False/True)
    with pytest.raises(InvalidInputError, match="input_diversity"):
        AttEXplore(input_diversity=value)
    assert AttEXplore(input_diversity=True).input_diversity == "pad"
    assert AttEXplore(input_diversity=False).input_diversity is False


def test_solve_ridge_falls_back_to_the_minimum_norm_solution_on_a_singular_system() -> None:
    """Without a penalty a rank-deficient Σπ x xᵀ has no inverse; the fallback must be the
    minimum-norm least-squares solution, i.e. pinv(A)·b (computed independently here)."""
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(6), rng.integers(0, 2, size=(6, 2))])
    x = np.column_stack([x, x[:, 1]])  # a duplicated column: rank 3 of 4
    w = rng.uniform(0.5, 1.0, 6)
    y = rng.normal(size=6)
    xtwx, xtwy = x.T @ (w[:, None] * x), x.T @ (w * y)
    with pytest.warns(UserWarning, match="singular"):
        coef, intercept, r2 = solve_ridge(xtwx, xtwy, w.sum(), w @ y, w @ y**2, 0.0)
    theta = np.linalg.pinv(xtwx) @ xtwy
    np.testing.assert_allclose(np.r_[intercept, coef], theta, rtol=1e-9, atol=1e-12)  # same solve, rounding only
    assert np.isfinite(r2)


def test_lime_without_penalty_and_a_narrow_kernel_gives_a_finite_map_and_says_so() -> None:
    # was: numpy LinAlgError after all queries (every sample but the all-on row weighs ~0)
    model = FunctionModel(CountingFn(), SHAPE, CLASSES)
    x = np.random.default_rng(1).uniform(size=SHAPE).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = LIME(n_samples=8, segmentation="grid", n_segments=4, ridge_alpha=0.0, kernel_width=0.01).explain(model, x)
    assert any("minimum-norm" in str(w.message) for w in caught)
    assert exp.attributions.shape == SHAPE and np.isfinite(exp.attributions).all()
