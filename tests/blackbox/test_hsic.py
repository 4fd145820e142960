"""HSIC attribution: the identity vs the trace formula, invariances, bandwidths, a numpy oracle,
analytic rankings and the null bias, accounting."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import HSIC
from onnxplain.blackbox.hsic import binary_design, hsic_scores, output_bandwidth, pairwise_median
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.base import FunctionModel

from .conftest import scalar_model


def trace_scores(x: np.ndarray, y: np.ndarray, sigma: float) -> np.ndarray:
    """(1/n)·tr(H K^(i) H · H L H) per cell, with xplique's input kernel 0.5 + δ(x_j = x_k)."""
    n = len(y)
    h = np.eye(n) - np.ones((n, n)) / n
    lc = h @ np.exp(-((y[:, None] - y[None, :]) ** 2) / (2 * sigma**2)) @ h
    out = []
    for i in range(x.shape[1]):
        k = 0.5 + (x[:, i, None] == x[None, :, i]).astype(float)
        out.append(np.trace(h @ k @ h @ lc) / n)
    return np.array(out)


def test_identity_equals_the_explicit_trace_formula():
    rng = np.random.default_rng(0)
    x = rng.random((37, 5)) < 0.5
    y = rng.normal(size=37) + 2.0 * x[:, 0]
    for sigma in (0.3, 1.0, output_bandwidth(y, "pairwise"), output_bandwidth(y, "reference")):
        np.testing.assert_allclose(
            hsic_scores(x, y, sigma), trace_scores(x, y, sigma), rtol=1e-10, atol=1e-12
        )


def test_scores_are_invariant_to_permuting_samples_and_flipping_cells():
    rng = np.random.default_rng(1)
    x = rng.random((64, 6)) < 0.5
    y = np.tanh(x @ rng.normal(size=6)) + 0.1 * rng.normal(size=64)
    ref = hsic_scores(x, y, 0.7)
    perm = rng.permutation(64)
    np.testing.assert_allclose(hsic_scores(x[perm], y[perm], 0.7), ref, rtol=1e-12)
    flipped = x.copy()
    flipped[:, [1, 4]] = ~flipped[:, [1, 4]]
    np.testing.assert_allclose(hsic_scores(flipped, y, 0.7), ref, rtol=1e-12)


def test_pairwise_median_and_reference_bandwidth():
    rng = np.random.default_rng(2)
    y = rng.normal(size=2100)  # more than one block of kernel rows
    j, k = np.triu_indices(len(y), 1)
    assert pairwise_median(y) == np.median(np.abs(y[j] - y[k]))
    assert output_bandwidth(y - 5.0, "reference") == abs(np.median(y - 5.0))
    assert pairwise_median(np.array([1.0])) == 0.0


def test_equal_outputs_and_a_zero_bandwidth_give_finite_scores():
    x = np.random.default_rng(3).random((40, 4)) < 0.5
    assert (hsic_scores(x, np.full(40, 0.25), 0.0) == 0.0).all()
    # Most outputs 0 (a saturated probability): median(y) = 0, the Dirac limit 1[y_j = y_k].
    y = np.where(x[:, 0] & x[:, 1], 1.0, 0.0)
    assert output_bandwidth(y, "reference") == 0.0
    scores = hsic_scores(x, y, 0.0)
    assert np.isfinite(scores).all() and scores[:2].min() > scores[2:].max()


def test_binary_design_is_seeded_and_balanced():
    a = binary_design("lhs", 100, 9, seed=4)
    assert a.dtype == bool and a.shape == (100, 9)
    assert (a.sum(axis=0) == 50).all()  # LHS strata below ½ round to 0: exactly n/2 ones
    np.testing.assert_array_equal(a, binary_design("lhs", 100, 9, seed=4))
    assert not np.array_equal(a, binary_design("lhs", 100, 9, seed=5))
    s = binary_design("sobol", 128, 9, seed=4)
    assert (s.sum(axis=0) == 64).all()  # a power-of-2 Sobol sample is balanced too
    np.testing.assert_array_equal(HSIC(100, grid=3, seed=4).design(), a)


def grid_model(fn, g: int) -> FunctionModel:
    """y = fn(X) on a 1×g×g image of ones with inpainting on 0 (the query is the design point)."""
    return scalar_model(fn, (1, g, g))


def test_additive_model_ranks_cells_by_coefficient_and_null_cell_is_small():
    # y = Σ c_i X_i: scores follow |c_i| (the sign does not matter). A cell the model ignores
    # has E[Score | y] = ½·n/(n−1)·(1 − L̄) ≤ ½·n/(n−1) (a bias of O(1/n) for Score/n); its
    # score is ≥ 0 (L is positive semi-definite) with mean ≤ 0.5005, so by Markov it stays below
    # 10× that with probability ≥ 0.9 for any seed; here it is 0.03 while the weakest relevant
    # cell scores ≈ 12.
    c = np.array([3.0, -2.0, 1.0, 0.0])
    exp = HSIC(1024, grid=2).explain(grid_model(lambda r: r @ c, 2), np.ones((1, 2, 2), np.float32), target=0)
    s = exp.attributions.ravel()  # H = W = g: the bicubic resize is the identity
    assert s[0] > s[1] > s[2] > 10 * 0.5 * 1024 / 1023 > s[3] >= 0.0
    assert exp.diagnostics["bandwidth"] == 2.0  # median |Δy| over the lattice of sums


def test_null_cell_bias_matches_its_closed_form():
    # Over random balanced columns s independent of y, E[(2/n) s̃ᵀ L s̃] = ½·n/(n−1)·(1 − L̄):
    # the mean of 4,000 draws is within 4 standard errors of it.
    rng = np.random.default_rng(6)
    n = 200
    y = rng.normal(size=n)
    sigma = pairwise_median(y)
    cols = np.argsort(rng.random((4000, n)), axis=1) < n // 2  # rows: balanced 0/1 columns
    scores = hsic_scores(cols.T, y, sigma)
    l_bar = np.exp(-((y[:, None] - y[None, :]) ** 2) / (2 * sigma**2)).mean()
    expected = 0.5 * n / (n - 1) * (1 - l_bar)
    assert abs(scores.mean() - expected) < 4 * scores.std() / np.sqrt(len(scores))


def test_a_shift_of_the_output_changes_only_the_reference_bandwidth():
    shape = (1, 6, 6)
    w = np.random.default_rng(7).normal(size=36)
    x = np.random.default_rng(8).random(shape).astype(np.float32)
    base = scalar_model(lambda r: np.tanh(r @ w / 4), shape)
    shifted = scalar_model(lambda r: np.tanh(r @ w / 4) + 3.0, shape)
    pair = HSIC(256, grid=3)
    np.testing.assert_allclose(
        pair.explain(shifted, x, target=0).attributions,
        pair.explain(base, x, target=0).attributions,
        rtol=1e-6,
    )
    ref = HSIC(256, grid=3, bandwidth="reference")
    a = ref.explain(base, x, target=0).attributions
    b = ref.explain(shifted, x, target=0).attributions
    assert np.abs(a - b).max() > 0.1 * np.abs(a).max()


def hsic_oracle(hsic: HSIC, fn, x: np.ndarray, baseline: np.ndarray | None) -> np.ndarray:
    """The map in plain numpy: the design re-drawn from the seed, every query, the trace formula
    per cell with the bandwidth from its definition, and torch's bicubic resize."""
    import torch
    import torch.nn.functional as F

    design = hsic.design()
    g = hsic.grid
    grids = torch.tensor(design.reshape(-1, 1, g, g).astype(np.float64))
    mode = {"nearest": ("nearest-exact", {}), "bilinear": ("bilinear", {"align_corners": False})}[
        hsic.mask_upsampling
    ]
    m = F.interpolate(grids, size=x.shape[1:], mode=mode[0], **mode[1]).numpy()
    if hsic.perturbation.kind == "amplitude":
        z = x * (m - 0.5) * hsic.perturbation.amplitude_sigma
    else:
        z = m * x + (1 - m) * baseline
    y = fn(z.reshape(len(z), -1))
    j, k = np.triu_indices(len(y), 1)
    sigma = np.median(np.abs(y[j] - y[k])) if hsic.bandwidth == "pairwise" else abs(np.median(y))
    scores = trace_scores(design, y, sigma)
    up = F.interpolate(
        torch.tensor(scores.reshape(1, 1, g, g)), size=x.shape[1:], mode="bicubic", align_corners=False
    )
    return up[0].numpy()


@pytest.mark.parametrize(
    ("kwargs", "kernel"),
    [
        ({"baseline": "blur(5,1.0)"}, (5, 1.0)),
        (
            {
                "sampler": "sobol",
                "bandwidth": "reference",
                "perturbation": "blurring",
                "baseline": "blur(3,0.8)",
                "mask_upsampling": "bilinear",
                "seed": 3,
            },
            (3, 0.8),
        ),
        ({"perturbation": "amplitude", "amplitude_sigma": 0.5}, None),
    ],
)
def test_map_equals_a_numpy_oracle_from_the_seed(kwargs, kernel):
    # Non-square 12×10 image, g = 3 (10 is not a multiple): half-pixel up-sampling and the
    # bicubic resize checked against torch. Tolerance: float32 queries vs float64, rtol 1e-5.
    from onnxplain.filters import blur

    shape = (3, 12, 10)
    rng = np.random.default_rng(1)
    w = rng.normal(size=int(np.prod(shape)))
    x = rng.random(shape).astype(np.float32)

    def fn(rows):
        return 1 / (1 + np.exp(-(rows @ w) / 10))

    hsic = HSIC(150, grid=3, **kwargs)
    exp = hsic.explain(scalar_model(fn, shape), x, target=0)
    baseline = None if kernel is None else blur(x, *kernel).astype(np.float64)
    oracle = hsic_oracle(hsic, fn, x.astype(np.float64), baseline)
    np.testing.assert_allclose(
        exp.attributions, np.broadcast_to(oracle, shape), rtol=1e-5, atol=1e-6 * np.abs(oracle).max()
    )


def test_accounting_and_batch_size_invariance():
    shape = (3, 8, 8)
    w = np.random.default_rng(2).normal(size=int(np.prod(shape)))
    model = scalar_model(lambda r: np.tanh(r @ w / 20), shape)
    xs = np.random.default_rng(3).random((2, *shape)).astype(np.float32)
    hsic = HSIC(150, grid=3, seed=5)
    ref = hsic.explain(model, xs, target=0)
    assert model.n_queries == ref.n_queries == 2 * 151
    assert ref.params["n_queries"] == 150 and ref.params["seed"] == 5 and ref.params["sampler"] == "lhs"
    for per_call in (1, 64, 100, 5000):
        other = HSIC(150, grid=3, seed=5, queries_per_call=per_call).explain(model, xs, target=0)
        np.testing.assert_array_equal(other.attributions, ref.attributions)
    single = hsic.explain(model, xs[1], target=0)
    np.testing.assert_array_equal(single.attributions, ref.attributions[1])
    torch_exp = HSIC(150, grid=3, seed=5, array_backend="torch").explain(model, xs, target=0)
    np.testing.assert_allclose(torch_exp.attributions, ref.attributions, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_budget_one_short_is_refused_before_any_query(batch: int):
    shape = (1, 4, 4)
    need = batch * 41
    x = np.random.default_rng(0).random((batch, *shape)).astype(np.float32)
    short = FunctionModel(lambda z: np.zeros((len(z), 2)), shape, 2, max_queries=need - 1)
    with pytest.raises(QueryBudgetExceeded):
        HSIC(40, grid=2).explain(short, x)
    assert short.n_queries == 0
    enough = FunctionModel(lambda z: np.zeros((len(z), 2)), shape, 2, max_queries=need)
    exp = HSIC(40, grid=2).explain(enough, x, target=0)
    assert enough.n_queries == exp.n_queries == need
    assert (exp.attributions == 0).all()  # equal outputs: no dependence, no NaN


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_queries": 1}, "n_queries"),
        ({"grid": 0}, "grid"),
        ({"sampler": "halton"}, "sampler"),
        ({"bandwidth": "silverman"}, "bandwidth"),
        ({"perturbation": "amplitude", "baseline": "blur"}, "no baseline"),
        ({"mask_upsampling": "area"}, "mask_upsampling"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        HSIC(**kwargs)


def test_defaults_follow_the_paper_and_a_too_fine_grid_is_refused():
    hsic = HSIC()
    assert (hsic.n_queries, hsic.grid, hsic.sampler) == (1500, 7, "lhs")
    assert hsic.queries_per_explicand((3, 224, 224)) == 1501
    model = FunctionModel(lambda z: np.zeros((len(z), 2)), (1, 6, 6), 2)
    with pytest.raises(InvalidInputError, match="finer"):
        HSIC(10).explain(model, np.zeros((1, 6, 6), np.float32))
    assert model.n_queries == 0
