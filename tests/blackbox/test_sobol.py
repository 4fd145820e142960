"""Sobol attribution: analytic total indices, the design's structure, a numpy oracle, accounting."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import Sobol
from onnxplain.blackbox.sobol import ROLE_A, ROLE_B
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.base import FunctionModel

from .conftest import scalar_model


def grid_model(fn, g: int) -> FunctionModel:
    """The 'identity' model on a 1×g×g image: with x = 1 and inpainting on 0, the query is the
    design point X itself (nearest up-sampling at H = g is the identity), so y = fn(X)."""
    return scalar_model(fn, (1, g, g))


ONES = np.ones((1, 2, 2), np.float32)


def test_additive_model_gives_squared_coefficient_shares():
    # y = Σ c_i X_i, X_i ~ U[0,1] independent: ST_i = c_i²/Σc², Σ ST = 1. At N = 1024 the
    # largest error over 30 seeds was 0.0021 (scrambled Sobol); allow 0.01. The ignored cell
    # (c = 0) has f(A) = f(C^(i)) exactly, so its index is exactly 0.
    c = np.array([4.0, 3.0, 2.0, 0.0])
    sobol = Sobol(1024 * 5, grid=2)
    assert sobol.nb_design == 1024
    exp = sobol.explain(grid_model(lambda r: r @ c, 2), ONES, target=0)
    st = exp.attributions.ravel()  # H = W = g: the bicubic resize is the identity
    np.testing.assert_allclose(st, c**2 / (c**2).sum(), atol=0.01)
    assert st[3] == 0.0
    assert exp.diagnostics["sum_indices"] == pytest.approx(1.0, abs=0.01)


def test_product_model_gives_four_sevenths():
    # y = X1·X2: Var y = 7/144, E[Var(y | X2)] = E[X2²]/12 = 4/144, so ST1 = ST2 = 4/7 and
    # Σ ST = 8/7 > 1 (interaction). Largest error over 30 seeds at N = 1024: 0.013; allow 0.03.
    exp = Sobol(1024 * 5, grid=2, seed=3).explain(grid_model(lambda r: r[:, 0] * r[:, 1], 2), ONES, target=0)
    st = exp.attributions.ravel()
    np.testing.assert_allclose(st[:2], 4 / 7, atol=0.03)
    assert (st[2:] == 0.0).all()
    assert exp.diagnostics["sum_indices"] == pytest.approx(8 / 7, abs=0.05)


def test_indices_are_invariant_to_affine_rescaling_of_the_output():
    # ST is a ratio of variances: a·f + b gives the same indices (up to float rounding).
    w = np.random.default_rng(0).normal(size=4)
    sobol = Sobol(64 * 5, grid=2)
    ref = sobol.explain(grid_model(lambda r: np.tanh(r @ w), 2), ONES, target=0).attributions
    other = sobol.explain(grid_model(lambda r: -3.5 * np.tanh(r @ w) + 7.0, 2), ONES, target=0).attributions
    np.testing.assert_allclose(other, ref, rtol=1e-5)


@pytest.mark.parametrize("include_b", [False, True])
def test_design_blocks_follow_the_replicated_design(include_b: bool):
    # [A; (B;) C^(1); …; C^(d)] with C^(i) = A except column i, which is B's.
    sobol = Sobol(16 * 20, grid=3, include_b=include_b, seed=2)
    design = sobol.design()
    a, b = design.matrices()
    n, d = sobol.nb_design, 9
    assert a.shape == b.shape == (n, d) and design.n == n * (d + (2 if include_b else 1))
    grids = np.concatenate([design.block(lo, min(lo + 64, design.n))[0] for lo in range(0, design.n, 64)])
    roles = np.concatenate([design.block(lo, min(lo + 64, design.n))[1] for lo in range(0, design.n, 64)])
    lead = 2 if include_b else 1
    np.testing.assert_array_equal(grids[:n], a.astype(np.float32))
    assert (roles[:n] == ROLE_A).all()
    if include_b:
        np.testing.assert_array_equal(grids[n : 2 * n], b.astype(np.float32))
        assert (roles[n : 2 * n] == ROLE_B).all()
    for i in range(d):
        c = grids[(lead + i) * n : (lead + i + 1) * n]
        assert (roles[(lead + i) * n : (lead + i + 1) * n] == i).all()
        np.testing.assert_array_equal(c[:, i], b[:, i].astype(np.float32))
        np.testing.assert_array_equal(np.delete(c, i, axis=1), np.delete(a, i, axis=1).astype(np.float32))
    assert 0.0 <= a.min() and a.max() < 1.0


def test_design_is_seeded_and_unscrambled_is_the_plain_sequence():
    from scipy.stats import qmc

    a0, _ = Sobol(8 * 5, grid=2, seed=0).design().matrices()
    a0_again, _ = Sobol(8 * 5, grid=2, seed=0).design().matrices()
    a1, _ = Sobol(8 * 5, grid=2, seed=1).design().matrices()
    np.testing.assert_array_equal(a0, a0_again)
    assert not np.array_equal(a0, a1)
    plain_a, plain_b = Sobol(8 * 5, grid=2, scramble=False, seed=7).design().matrices()
    ab = qmc.Sobol(8, scramble=False).random(8)
    np.testing.assert_array_equal(plain_a, ab[:, :4])
    np.testing.assert_array_equal(plain_b, ab[:, 4:])


def _torch_resize(a: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    kwargs = {} if mode == "nearest-exact" else {"align_corners": False}
    return F.interpolate(torch.tensor(a)[:, None], size=size, mode=mode, **kwargs)[:, 0].numpy()


def sobol_oracle(sobol: Sobol, fn, x: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """The map from the paper's formulas in plain numpy: re-draw A, B from the seed, stack the
    design, build every query, Jansen's estimator, bicubic resize (torch's, not ours)."""
    a, b = sobol.design().matrices()
    n, d = a.shape
    g = sobol.grid
    parts = [a] + ([b] if sobol.include_b else [])
    for i in range(d):
        c = a.copy()
        c[:, i] = b[:, i]
        parts.append(c)
    design = np.concatenate(parts)
    mode = "nearest-exact" if sobol.mask_upsampling == "nearest" else "bilinear"
    m = _torch_resize(design.reshape(-1, g, g), x.shape[1:], mode)[:, None]  # (n(d+1), 1, H, W)
    if sobol.perturbation.kind == "amplitude":
        z = x * (m - 0.5) * sobol.perturbation.amplitude_sigma
    else:
        z = m * x + (1 - m) * baseline
    y = fn(z.reshape(len(z), -1))
    lead = len(parts) - d
    f_a, f_c = y[:n], y[lead * n :].reshape(d, n)
    var = np.sum((f_a - f_a.mean()) ** 2) / (n - 1)
    st = np.array([np.sum((f_a - f_c[i]) ** 2) / (2 * n * var) for i in range(d)])
    return _torch_resize(st.reshape(1, g, g), x.shape[1:], "bicubic")[0]


@pytest.mark.parametrize(
    ("kwargs", "kernel"),
    [
        ({"baseline": "blur(5,1.0)"}, (5, 1.0)),
        (
            {"perturbation": "blurring", "baseline": "blur(3,0.8)", "mask_upsampling": "bilinear", "seed": 4},
            (3, 0.8),
        ),
        ({"perturbation": "amplitude", "amplitude_sigma": 2.0, "include_b": True, "scramble": False}, None),
    ],
)
def test_map_equals_a_numpy_oracle_from_the_seed(kwargs, kernel):
    # Non-square image whose width (10) is not a multiple of g = 4: exercises the half-pixel
    # nearest/bilinear up-sampling and the bicubic resize against torch's interpolate.
    # Tolerance: queries in float32 (ours) vs float64 (oracle), relative 1e-5.
    from onnxplain.filters import blur

    shape = (3, 12, 10)
    rng = np.random.default_rng(1)
    w = rng.normal(size=int(np.prod(shape)))
    x = rng.random(shape).astype(np.float32)

    def fn(rows):
        return 1 / (1 + np.exp(-(rows @ w) / 10))

    sobol = Sobol(16 * 18, grid=4, **kwargs)
    exp = sobol.explain(scalar_model(fn, shape), x, target=0)
    baseline = None if kernel is None else blur(x, *kernel).astype(np.float64)
    oracle = sobol_oracle(sobol, fn, x.astype(np.float64), baseline)
    np.testing.assert_allclose(
        exp.attributions, np.broadcast_to(oracle, shape), rtol=1e-5, atol=1e-6 * np.abs(oracle).max()
    )


def test_accounting_budget_and_batch_size_invariance():
    shape = (3, 8, 8)
    w = np.random.default_rng(2).normal(size=int(np.prod(shape)))
    model = scalar_model(lambda r: np.tanh(r @ w / 20), shape)
    xs = np.random.default_rng(3).random((2, *shape)).astype(np.float32)
    sobol = Sobol(200, grid=3, seed=5)  # d = 9: N = 16 (16·10 = 160 ≤ 200 < 32·10)
    assert (sobol.nb_design, sobol.n_perturbations) == (16, 160)
    ref = sobol.explain(model, xs, target=0)
    assert model.n_queries == ref.n_queries == 2 * 161
    assert ref.params["nb_design"] == 16 and ref.params["n_queries"] == 200 and ref.params["seed"] == 5
    for per_call in (1, 64, 100, 5000):
        other = Sobol(200, grid=3, seed=5, queries_per_call=per_call).explain(model, xs, target=0)
        np.testing.assert_array_equal(other.attributions, ref.attributions)
    single = sobol.explain(model, xs[1], target=0)
    np.testing.assert_array_equal(single.attributions, ref.attributions[1])
    torch_exp = Sobol(200, grid=3, seed=5, array_backend="torch").explain(model, xs, target=0)
    np.testing.assert_allclose(torch_exp.attributions, ref.attributions, rtol=1e-5, atol=1e-7)
    with_b = Sobol(16 * 11, grid=3, include_b=True)
    model.reset_counters()
    assert with_b.explain(model, xs[0], target=0).n_queries == model.n_queries == 16 * 11 + 1


@pytest.mark.parametrize("batch", [1, 3])
def test_a_budget_one_short_is_refused_before_any_query(batch: int):
    shape = (1, 4, 4)
    sobol = Sobol(8 * 5, grid=2)
    need = batch * (8 * 5 + 1)
    x = np.zeros((batch, *shape), np.float32)
    short = FunctionModel(lambda z: np.zeros((len(z), 2)), shape, 2, max_queries=need - 1)
    with pytest.raises(QueryBudgetExceeded):
        sobol.explain(short, x)
    assert short.n_queries == 0
    enough = FunctionModel(lambda z: np.zeros((len(z), 2)), shape, 2, max_queries=need)
    with pytest.warns(UserWarning, match="constant"):  # a constant model: indices set to 0
        exp = sobol.explain(enough, x, target=0)
    assert enough.n_queries == exp.n_queries == need
    assert (exp.attributions == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_queries": 129}, "too small"),
        ({"n_queries": 0}, "n_queries"),
        ({"grid": 0}, "grid"),
        ({"perturbation": "noise"}, "perturbation"),
        ({"perturbation": "amplitude", "baseline": 0.5}, "no baseline"),
        ({"perturbation": "blurring", "baseline": 0.0}, "blurred"),
        ({"amplitude_sigma": -1.0}, "amplitude_sigma"),
        ({"mask_upsampling": "cubic"}, "mask_upsampling"),
        ({"scramble": 1}, "scramble"),
        ({"baseline": "noise"}, "baseline"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Sobol(**kwargs)


def test_explain_rejects_a_grid_finer_than_the_image_and_records_settings():
    model = FunctionModel(lambda z: np.zeros((len(z), 2)), (1, 6, 6), 2)
    with pytest.raises(InvalidInputError, match="finer"):
        Sobol(2 * 65, grid=8).explain(model, np.zeros((1, 6, 6), np.float32))
    assert model.n_queries == 0
    assert Sobol().params()["n_queries"] == 2080 and Sobol().nb_design == 32  # g = 8, N = 32
    params = Sobol(perturbation="amplitude").params()
    assert params["baseline"] is None and params["amplitude_sigma"] == 1.0
