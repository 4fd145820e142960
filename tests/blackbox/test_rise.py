"""RISE: constant and patch models, mask statistics against an skimage oracle, invariants."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import RISE
from onnxplain.blackbox.rise import RiseMasks
from onnxplain.blackbox.sampling import NumpyOps
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.base import FunctionModel

from .conftest import scalar_model

SHAPE = (3, 24, 24)


def constant_model(c: float = 0.7) -> FunctionModel:
    return FunctionModel(lambda z: np.tile([c, 1 - c], (len(z), 1)), SHAPE, 2)


def test_constant_model_gives_the_constant_everywhere():
    # S_p = c·mean_i M_i(p)/p_keep; mean of 4000 smooth masks has std ≈ 0.5/sqrt(4000·~0.5) ≈ 1 %
    # per pixel (masks are correlated within a cell); allow 6 %.
    x = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    exp = RISE(n_masks=4000).explain(constant_model(), x, target=0)
    np.testing.assert_allclose(exp.attributions, 0.7, rtol=0.06)
    assert exp.attributions.shape == SHAPE
    full = RISE(n_masks=100, p_keep=1.0).explain(constant_model(), x, target=0)
    np.testing.assert_allclose(full.attributions, 0.7, rtol=1e-6)  # every mask is all ones


def test_masks_match_an_skimage_resize_and_crop_oracle():
    from skimage.transform import resize

    h, w, s, p = 24, 20, 7, 0.5
    gen = RiseMasks(h, w, s, p, seed=4)
    ops = NumpyOps()
    masks = gen.block(ops, 2, 64)
    assert masks.shape == (64, 1, h, w) and masks.dtype == np.float32
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    # Re-draw the same grids and shifts (same generator, same order) and resize the slow way.
    rng = ops.rng(4, "rise", 2)
    grids = ops.bernoulli(rng, p, (64, s, s))
    dy = ops.integers(rng, gen.cell_h, 64)
    dx = ops.integers(rng, gen.cell_w, 64)
    for i in (0, 17, 63):
        up = resize(grids[i].astype(np.float64), ((s + 1) * gen.cell_h, (s + 1) * gen.cell_w), order=1,
                    mode="reflect", anti_aliasing=False)
        np.testing.assert_allclose(masks[i, 0], up[dy[i] : dy[i] + h, dx[i] : dx[i] + w], atol=1e-6)


def test_mask_mean_is_p_keep():
    # 4096 masks × 480 pixels; the mean's std is ≈ 0.5/sqrt(4096·49/…) < 0.005; allow 0.02.
    gen = RiseMasks(24, 20, 7, 0.3, seed=0)
    ops = NumpyOps()
    masks = np.concatenate([gen.block(ops, k, 64) for k in range(64)])
    assert masks.mean() == pytest.approx(0.3, abs=0.02)


def test_patch_model_ranks_the_patch_first():
    patch = (slice(8, 14), slice(4, 10))

    def f(r):
        img = r.reshape(len(r), *SHAPE)
        return img[:, :, patch[0], patch[1]].mean(axis=(1, 2, 3))

    x = np.ones(SHAPE, np.float32)
    exp = RISE(n_masks=2000).explain(scalar_model(f, SHAPE), x, target=0)
    sal = exp.saliency()
    top = np.unravel_index(np.argmax(sal), sal.shape)
    assert patch[0].start <= top[0] < patch[0].stop and patch[1].start <= top[1] < patch[1].stop
    inside = sal[patch].mean()
    outside = np.delete(sal.ravel(), np.ravel_multi_index(np.mgrid[patch].reshape(2, -1), sal.shape)).mean()
    assert inside > outside


def test_two_blobs_ranked_by_weight():
    w = np.zeros(SHAPE)
    w[:, 2:6, 2:6] = 3.0
    w[:, 16:20, 16:20] = 1.0
    x = np.ones(SHAPE, np.float32)
    exp = RISE(n_masks=2000).explain(scalar_model(lambda r: r @ w.ravel(), SHAPE), x, target=0)
    sal = exp.saliency()
    assert sal[2:6, 2:6].mean() > sal[16:20, 16:20].mean() > sal[10:12, 10:12].mean()


def test_determinism_batch_size_invariance_and_counts():
    rng = np.random.default_rng(1)
    w = rng.normal(size=SHAPE)
    model = scalar_model(lambda r: np.tanh(r @ w.ravel() / 50), SHAPE)
    xs = rng.random((2, *SHAPE)).astype(np.float32)
    ref = RISE(n_masks=300, seed=5).explain(model, xs, target=0)
    assert model.n_queries == ref.n_queries == 2 * 301
    for batch_size in (1, 64, 1000):
        other = RISE(n_masks=300, seed=5, queries_per_call=batch_size).explain(model, xs, target=0)
        np.testing.assert_array_equal(other.attributions, ref.attributions)
    single = RISE(n_masks=300, seed=5).explain(model, xs[1], target=0)
    np.testing.assert_array_equal(single.attributions, ref.attributions[1])
    assert single.params["seed"] == 5 and single.params["grid"] == 7
    torch_a = RISE(n_masks=300, array_backend="torch", queries_per_call=64).explain(model, xs[0], target=0)
    torch_b = RISE(n_masks=300, array_backend="torch", queries_per_call=512).explain(model, xs[0], target=0)
    np.testing.assert_array_equal(torch_a.attributions, torch_b.attributions)
    assert torch_a.params["array_backend"] == "torch"


def test_onnx_and_torch_models_give_the_same_map(demo_models):
    onnx_model, torch_model, digits = demo_models
    rise = RISE(n_masks=500)
    a = rise.explain(onnx_model, digits[:2]).attributions
    b = rise.explain(torch_model, digits[:2]).attributions
    np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(a).max())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_masks": 0}, "n_masks"),
        ({"grid": 0}, "grid"),
        ({"p_keep": 0.0}, "p_keep"),
        ({"p_keep": 1.5}, "p_keep"),
        ({"baseline": "noise"}, "baseline"),
        ({"seed": 1.5}, "seed"),
        ({"array_backend": "gpu"}, "array_backend"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        RISE(**kwargs)


def test_explain_rejects_bad_input():
    model = constant_model()
    with pytest.raises(InvalidInputError, match="finer"):
        RISE(n_masks=10, grid=30).explain(model, np.zeros(SHAPE, np.float32))
    with pytest.raises(InvalidInputError, match="shape"):
        RISE(n_masks=10).explain(model, np.zeros((3, 24, 23), np.float32))
    with pytest.raises(InvalidInputError, match="baseline"):
        RISE(n_masks=10, baseline=np.zeros((3, 4, 4), np.float32)).explain(model, np.zeros(SHAPE, np.float32))
    limited = FunctionModel(lambda z: np.tile([0.5, 0.5], (len(z), 1)), SHAPE, 2, max_queries=50)
    with pytest.raises(QueryBudgetExceeded):
        RISE(n_masks=50).explain(limited, np.zeros(SHAPE, np.float32))
    assert limited.n_queries == 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_baseline_is_the_substrate_of_the_hidden_pixels(backend: str):
    # Query i is b + M_i∘(x − b). Oracle: the same masks with a zero baseline on g(z) = f(z + b)
    # explaining x − b make exactly those queries, so the maps must agree; a query that left b
    # out (as the zero default may) would give f(M_i∘(x − b)) instead.
    rng = np.random.default_rng(3)
    w = rng.normal(size=SHAPE).ravel()
    b = rng.random(SHAPE).astype(np.float32)
    x = rng.random(SHAPE).astype(np.float32)

    def f(rows: np.ndarray) -> np.ndarray:
        return np.tanh(rows @ w / 20)

    model = scalar_model(f, SHAPE)
    shifted = scalar_model(lambda rows: f(rows + b.ravel()), SHAPE)
    ours = RISE(n_masks=200, baseline=b, array_backend=backend).explain(model, x, target=0)
    oracle = RISE(n_masks=200, array_backend=backend).explain(shifted, x - b, target=0)
    np.testing.assert_allclose(ours.attributions, oracle.attributions, rtol=1e-5, atol=1e-6)
    unshifted = RISE(n_masks=200, array_backend=backend).explain(model, x - b, target=0)
    assert np.abs(unshifted.attributions - oracle.attributions).max() > 0.05
