"""Occlusion: exact linear identities, a window-by-window numpy oracle, parity with Captum's
``Occlusion``, the budget that picks the stride, query accounting, invariances and errors."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import Occlusion
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.base import FunctionModel
from onnxplain.registry import get_method

from .conftest import flat

SHAPE = (3, 10, 9)


def linear_model(weights: np.ndarray, **kwargs) -> FunctionModel:
    """f_0(z) = Σ w z, f_1 = −f_0 (float64 arithmetic)."""
    w = weights.ravel()
    return FunctionModel(lambda z: np.stack([flat(z) @ w, -(flat(z) @ w)], axis=1), weights.shape, 2, **kwargs)


def smooth_model(rng: np.random.Generator, shape=SHAPE, **kwargs) -> FunctionModel:
    """Three classes, tanh of random projections plus a product term: nothing additive."""
    proj = rng.normal(size=(int(np.prod(shape)), 3))

    def f(z):
        u = flat(z) @ proj
        return np.tanh(u / 5) + 0.05 * u[:, [1, 2, 0]] * u

    return FunctionModel(f, shape, 3, **kwargs)


def test_pixel_windows_on_a_linear_model_give_each_pixels_contribution():
    rng = np.random.default_rng(0)
    w, x, b = rng.normal(size=SHAPE), rng.random(SHAPE).astype(np.float32), rng.random(SHAPE).astype(np.float32)
    exp = Occlusion(window=(3, 1, 1), strides=(3, 1, 1), baseline=b).explain(linear_model(w), x, target=0)
    pixel = (w * (x.astype(np.float64) - b)).sum(axis=0)  # Σ_c w_c (x_c − b_c), on every channel
    np.testing.assert_allclose(exp.attributions, np.broadcast_to(pixel, SHAPE), rtol=1e-5, atol=1e-6)
    assert exp.n_queries == 1 + 10 * 9 and exp.params["n_windows"] == 90


def test_a_constant_model_gets_zero_everywhere():
    model = FunctionModel(lambda z: np.tile([0.25, 0.75], (len(z), 1)), SHAPE, 2)
    exp = Occlusion(window=3, strides=2).explain(model, np.random.default_rng(1).random(SHAPE), target=1)
    assert np.all(exp.attributions == 0.0)


def occlusion_oracle(fn, x: np.ndarray, b: np.ndarray, t: int, window, strides) -> np.ndarray:
    """Captum's Occlusion written out window by window from the formula (plain numpy loops)."""
    counts = [int(np.ceil((d - w) / s)) + 1 for d, w, s in zip(x.shape, window, strides, strict=True)]
    total, covered = np.zeros(x.shape), np.zeros(x.shape)
    fx = fn(x[None].astype(np.float64))[0, t]
    for kc in range(counts[0]):
        for kh in range(counts[1]):
            for kw in range(counts[2]):
                box = tuple(slice(k * s, k * s + w) for k, s, w in zip((kc, kh, kw), strides, window, strict=True))
                z = x.astype(np.float64).copy()
                z[box] = b[box]
                total[box] += fx - fn(z[None])[0, t]
                covered[box] += 1
    return total / covered


@pytest.mark.parametrize(("window", "strides"), [((3, 4, 3), (3, 3, 2)), ((1, 3, 3), (1, 2, 2)), ((2, 2, 9), (1, 1, 9))])
def test_matches_a_window_by_window_oracle_with_overhanging_windows(window, strides):
    rng = np.random.default_rng(2)
    model = smooth_model(rng)
    x, b = rng.random(SHAPE).astype(np.float32), rng.random(SHAPE).astype(np.float32)
    exp = Occlusion(window=window, strides=strides, baseline=b).explain(model, x, target=2)
    ref = occlusion_oracle(model.fn, x, b, 2, window, strides)
    np.testing.assert_allclose(exp.attributions, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def small_cnn(shape=SHAPE, classes: int = 5):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    c, h, w = shape
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * h * w, classes)
    ).double()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("net_kind", ["cnn", "linear"])
def test_parity_with_captum(net_kind: str, backend: str):
    torch = pytest.importorskip("torch")
    captum_attr = pytest.importorskip("captum.attr")
    net = small_cnn() if net_kind == "cnn" else torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(270, 5)).double()

    def fn(z):
        with torch.no_grad():
            return net(torch.as_tensor(np.asarray(z), dtype=torch.float64)).numpy()

    rng = np.random.default_rng(3)
    x, b = rng.random((2, *SHAPE)).astype(np.float32), rng.random(SHAPE).astype(np.float32)
    for window, strides in (((3, 4, 3), (3, 3, 2)), ((1, 3, 3), (1, 2, 2))):
        ours = Occlusion(window=window, strides=strides, baseline=b, array_backend=backend, queries_per_call=64)
        got = ours.explain(FunctionModel(fn, SHAPE, 5), x, target=[1, 4]).attributions
        ref = captum_attr.Occlusion(lambda t: net(t.double())).attribute(
            torch.as_tensor(x), sliding_window_shapes=window, strides=strides,
            baselines=torch.as_tensor(b)[None], target=[1, 4], perturbations_per_eval=64,
        ).numpy()
        # Same float32 queries, same float64 network: only summation order differs.
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_the_budget_picks_the_finest_stride_that_fits():
    occ = Occlusion(n_queries=30, window=(3, 4, 4))
    plan = occ.plan(SHAPE)
    assert plan.strides == (3, 2, 2) and plan.n_windows == 4 * 4  # ⌈6/2⌉ + 1 by ⌈5/2⌉ + 1
    finer = Occlusion(window=(3, 4, 4), strides=(3, 1, 1)).plan(SHAPE)
    assert 1 + finer.n_windows > 30  # the next finer stride would not fit
    model = smooth_model(np.random.default_rng(4))
    exp = occ.explain(model, np.zeros(SHAPE, np.float32), target=0)
    assert exp.n_queries == 1 + plan.n_windows == model.n_queries
    assert exp.params["n_queries"] == 30 and exp.params["strides"] == list(plan.strides)
    with pytest.raises(InvalidInputError, match="too small"):
        Occlusion(n_queries=5, window=(3, 4, 4)).explain(model, np.zeros(SHAPE, np.float32))
    assert model.n_queries == exp.n_queries  # the refusal spent nothing


def test_auto_window_scales_with_the_image():
    mnist, photo = Occlusion().plan((1, 28, 28)), Occlusion().plan((3, 224, 224))
    assert (mnist.window, mnist.strides, mnist.n_windows) == ((1, 2, 2), (1, 1, 1), 729)
    assert (photo.window, photo.strides, photo.n_windows) == ((3, 16, 16), (3, 8, 8), 729)
    assert Occlusion().queries_per_explicand((3, 224, 224)) == 730


@pytest.mark.parametrize("batch", [False, True])
def test_query_accounting_and_budget_refusal(batch: bool):
    rng = np.random.default_rng(5)
    x = rng.random((2, *SHAPE) if batch else SHAPE).astype(np.float32)
    occ = Occlusion(window=(3, 3, 3), strides=(3, 2, 2))
    need = (2 if batch else 1) * occ.queries_per_explicand(SHAPE)
    model = smooth_model(rng)
    exp = occ.explain(model, x, target=0)
    assert exp.n_queries == model.n_queries == need
    short = smooth_model(rng, max_queries=need - 1)
    with pytest.raises(QueryBudgetExceeded):
        occ.explain(short, x, target=0)
    assert short.n_queries == 0


def test_same_map_whatever_queries_per_call_backend_or_batch():
    rng = np.random.default_rng(6)
    model = smooth_model(rng)
    xs = rng.random((3, *SHAPE)).astype(np.float32)
    ref = Occlusion(window=(1, 3, 2), strides=(1, 2, 1), baseline="blur").explain(model, xs, target=[0, 1, 2])
    assert ref.params["n_windows"] > 64  # several blocks
    for qpc in (1, 64, 1000):
        other = Occlusion(window=(1, 3, 2), strides=(1, 2, 1), baseline="blur", queries_per_call=qpc)
        np.testing.assert_array_equal(other.explain(model, xs, target=[0, 1, 2]).attributions, ref.attributions)
    alone = Occlusion(window=(1, 3, 2), strides=(1, 2, 1), baseline="blur").explain(model, xs[1], target=1)
    np.testing.assert_array_equal(alone.attributions, ref.attributions[1])
    pytest.importorskip("torch")
    dev = Occlusion(window=(1, 3, 2), strides=(1, 2, 1), baseline="blur", array_backend="torch")
    np.testing.assert_allclose(dev.explain(model, xs, target=[0, 1, 2]).attributions, ref.attributions, rtol=1e-6,
                               atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 0}, "window"),
        ({"window": (1, 2, 3, 4)}, "window"),
        ({"window": "big"}, "window"),
        ({"strides": (1, 0)}, "strides"),
        ({"n_queries": 1}, "n_queries"),
        ({"n_queries": 100, "strides": 2}, "not both"),
        ({"baseline": "noise"}, "baseline"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Occlusion(**kwargs)


def test_explain_rejects_windows_that_do_not_fit_before_any_query():
    model = smooth_model(np.random.default_rng(7))
    x = np.zeros(SHAPE, np.float32)
    with pytest.raises(InvalidInputError, match="does not fit"):
        Occlusion(window=(3, 11, 2)).explain(model, x)
    with pytest.raises(InvalidInputError, match="exceeds its window"):
        Occlusion(window=(3, 2, 2), strides=(3, 3, 1)).explain(model, x)
    assert model.n_queries == 0
    assert get_method("occlusion") is Occlusion
