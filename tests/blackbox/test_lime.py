"""LIME: additive segment models, kernel values, the ridge against sklearn, labels, invariants."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import LIME
from onnxplain.blackbox.lime import grid_segments, kernel_weights, relabel, solve_ridge
from onnxplain.errors import InvalidInputError
from onnxplain.models.base import FunctionModel

from .conftest import flat

H = W = 16


def additive_model(x: np.ndarray, labels: np.ndarray, weights: np.ndarray, **kwargs) -> FunctionModel:
    """f(z) = Σ_k w_k · 1[segment k of z equals x] — exactly LIME's surrogate family."""
    ids, k = relabel(labels)
    onehot = (ids.ravel()[None, :] == np.arange(k)[:, None]).astype(np.float64)  # (K, HW)
    sizes = onehot.sum(axis=1)
    ref = x.reshape(x.shape[0], -1)

    def forward(z):
        r = flat(z).reshape(len(z), x.shape[0], -1)
        same = np.all(np.isclose(r, ref[None]), axis=1).astype(np.float64)  # (N, HW)
        intact = (same @ onehot.T) == sizes
        v = intact.astype(np.float64) @ weights
        return np.stack([v, -v], axis=1)

    return FunctionModel(forward, x.shape, 2, **kwargs)


def test_additive_segment_model_recovers_the_weights():
    labels = grid_segments(H, W, 4)
    weights = np.random.default_rng(0).normal(size=16)
    x = np.random.default_rng(1).uniform(0.1, 1.0, (1, H, W)).astype(np.float32)
    exp = LIME(n_samples=1000, segmentation="grid", n_segments=16).explain(
        additive_model(x, labels, weights), x, target=0
    )
    # Noise-free additive data: the only error is ridge shrinkage (α = 1 against ~1000
    # weighted samples), a few percent of each weight.
    np.testing.assert_allclose(exp.attributions[0], weights[labels], atol=0.05 * np.abs(weights).max())
    assert exp.diagnostics["r2"] > 0.999 and exp.diagnostics["n_segments"] == 16
    assert exp.params["segmentation"] == "grid(4x4)"


def test_kernel_values():
    k = 40
    assert kernel_weights(np.array(k), k, 0.25) == pytest.approx(1.0)
    assert kernel_weights(np.array(0), k, 0.25) == pytest.approx(np.exp(-8.0))  # all off: d = 1
    half = kernel_weights(np.array(k // 2), k, 0.25)
    assert half == pytest.approx(np.exp(-((1 - np.sqrt(0.5)) ** 2) / (2 * 0.25**2)))
    assert half == pytest.approx(0.50, abs=0.01)


def test_closed_form_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(2)
    d = (rng.random((300, 12)) < 0.5).astype(np.float64)
    y = d @ rng.normal(size=12) + 0.3 * rng.normal(size=300) + 2.0
    pi = rng.random(300)
    x = np.hstack([np.ones((300, 1)), d])
    coef, intercept, r2 = solve_ridge(
        (x * pi[:, None]).T @ x, (x * pi[:, None]).T @ y, pi.sum(), (pi * y).sum(), (pi * y * y).sum(), 1.0
    )
    ref = Ridge(alpha=1.0, fit_intercept=True).fit(d, y, sample_weight=pi)
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-8, atol=1e-10)
    assert intercept == pytest.approx(ref.intercept_, rel=1e-8)
    assert r2 == pytest.approx(ref.score(d, y, sample_weight=pi), rel=1e-8)


def test_label_arrays_starting_at_one_are_relabelled():
    labels = grid_segments(H, W, 3) + 1  # 1..9, as slic(start_label=1) gives
    weights = np.arange(1.0, 10.0)
    x = np.random.default_rng(3).uniform(0.1, 1.0, (1, H, W)).astype(np.float32)
    exp = LIME(n_samples=600, segmentation=labels).explain(additive_model(x, labels, weights), x, target=0)
    # The last segment (label 9) must be hidden sometimes, else its weight would be lost.
    np.testing.assert_allclose(exp.attributions[0], weights[labels - 1], atol=0.3)
    assert exp.diagnostics["n_segments"] == 9 and exp.params["segmentation"] == "labels"


def test_mean_hide_fills_each_segment_with_its_mean_colour():
    x = np.random.default_rng(4).random((3, H, W)).astype(np.float32)
    labels, k = relabel(grid_segments(H, W, 4))
    fudged = LIME()._fudge(x, labels, k)
    for seg in (0, 7, 15):
        mask = labels == seg
        np.testing.assert_allclose(fudged[:, mask], x[:, mask].mean(axis=1, keepdims=True) * np.ones((1, mask.sum())),
                                   rtol=1e-5)
    assert np.all(LIME(hide=0.25)._fudge(x, labels, k) == 0.25)


def test_first_sample_is_the_explicand_and_queries_hide_whole_segments():
    seen = []
    x = np.random.default_rng(5).uniform(0.5, 1.0, (1, H, W)).astype(np.float32)

    def record(z):
        arr = np.asarray(z)
        seen.append(arr.copy())
        return np.tile([0.2, 0.8], (len(arr), 1))

    model = FunctionModel(record, x.shape, 2)
    LIME(n_samples=64, segmentation="grid", n_segments=16, hide=0.0).explain(model, x, target=0)
    queries = seen[1]  # seen[0] is the target/score query
    np.testing.assert_array_equal(queries[0], x)
    labels = grid_segments(H, W, 4)
    hidden = queries[:, 0] == 0.0
    for seg in range(16):
        per_seg = hidden[:, labels == seg]
        assert np.all(per_seg.all(axis=1) | (~per_seg).all(axis=1))  # all-or-nothing per segment


def test_segmentation_choice_is_recorded():
    grey = np.random.default_rng(6).random((1, 28, 28)).astype(np.float32)
    model = FunctionModel(lambda z: np.tile([0.3, 0.7], (len(z), 1)), grey.shape, 2)
    assert LIME(n_samples=8).explain(model, grey).params["segmentation"] == "grid(7x7)"
    quadrants = np.kron(np.random.default_rng(7).random((3, 2, 2)), np.ones((32, 32)))
    colour = (quadrants + 0.05 * np.random.default_rng(8).random((3, 64, 64))).astype(np.float32)
    cmodel = FunctionModel(lambda z: np.tile([0.3, 0.7], (len(z), 1)), colour.shape, 2)
    exp = LIME(n_samples=8).explain(cmodel, colour)
    assert exp.params["segmentation"].startswith("quickshift") and exp.diagnostics["n_segments"] > 1
    slic = LIME(n_samples=8, segmentation="slic", n_segments=20).explain(cmodel, colour)
    assert slic.params["segmentation"] == "slic(n_segments=20)" and slic.diagnostics["n_segments"] > 1


def tanh_model(rng: np.random.Generator) -> FunctionModel:
    """Two classes on (3, H, W): ±tanh of a random projection."""
    w = rng.normal(size=(3, H, W)).ravel()

    def f(z):
        v = np.tanh(flat(z) @ w / 20)
        return np.stack([v, -v], axis=1)

    return FunctionModel(f, (3, H, W), 2)


def test_determinism_batch_size_invariance_and_counts():
    rng = np.random.default_rng(8)
    model = tanh_model(rng)
    xs = rng.random((2, 3, H, W)).astype(np.float32)
    lime = LIME(n_samples=300, segmentation="grid", n_segments=16, seed=2)
    ref = lime.explain(model, xs, target=0)
    assert model.n_queries == ref.n_queries == 2 * 301
    assert ref.diagnostics["r2"].shape == (2,) and ref[1].diagnostics["n_segments"] == 16
    for batch_size in (1, 64, 1000):
        other = LIME(n_samples=300, segmentation="grid", n_segments=16, seed=2, queries_per_call=batch_size).explain(
            model, xs, target=0
        )
        np.testing.assert_array_equal(other.attributions, ref.attributions)
    np.testing.assert_array_equal(lime.explain(model, xs[1], target=0).attributions, ref.attributions[1])
    t1 = LIME(n_samples=300, segmentation="grid", n_segments=16, array_backend="torch", queries_per_call=64).explain(model, xs[0], 0)
    t2 = LIME(n_samples=300, segmentation="grid", n_segments=16, array_backend="torch", queries_per_call=300).explain(model, xs[0], 0)
    np.testing.assert_array_equal(t1.attributions, t2.attributions)


def test_onnx_and_torch_models_give_the_same_map(demo_models):
    onnx_model, torch_model, digits = demo_models
    lime = LIME(n_samples=300)
    a = lime.explain(onnx_model, digits[:2])
    b = lime.explain(torch_model, digits[:2])
    np.testing.assert_allclose(a.attributions, b.attributions, atol=1e-4 * np.abs(a.attributions).max())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 1}, "n_samples"),
        ({"segmentation": "felzenszwalb"}, "segmentation"),
        ({"segmentation": np.zeros((4, 4), np.float32)}, "segmentation"),
        ({"segmentation": np.zeros(4, np.int64)}, "segmentation"),
        ({"hide": "blur"}, "hide"),
        ({"hide": float("nan")}, "hide"),
        ({"kernel_width": 0.0}, "kernel_width"),
        ({"ridge_alpha": -1.0}, "ridge_alpha"),
        ({"n_segments": 0}, "n_segments"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        LIME(**kwargs)


def test_explain_rejects_bad_input():
    model = FunctionModel(lambda z: np.tile([0.3, 0.7], (len(z), 1)), (1, H, W), 2)
    x = np.zeros((1, H, W), np.float32)
    with pytest.raises(InvalidInputError, match="label array"):
        LIME(n_samples=10, segmentation=np.zeros((H, W + 1), np.int64)).explain(model, x)
    with pytest.raises(InvalidInputError, match="quickshift"):
        LIME(n_samples=10, segmentation="quickshift").explain(model, x)
    with pytest.raises(InvalidInputError, match="out of range"):
        LIME(n_samples=10).explain(model, x, target=5)
    assert model.n_queries == 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_batch_of_mixed_segmentations_equals_each_explicand_alone(backend: str) -> None:
    """Explicands that share a segmentation share the masks, those with the same segment count
    share the design statistics; neither sharing may change any explicand's map."""
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    model = tanh_model(rng)
    xs = rng.random((4, 3, H, W)).astype(np.float32)
    grid16 = grid_segments(H, W, 4)
    shuffled16 = rng.permutation(16)[grid16]  # 16 segments too, laid out differently
    labels = np.stack([grid16, grid_segments(H, W, 3), shuffled16, grid16])
    lime = LIME(n_samples=200, segmentation=labels, seed=5, array_backend=backend, queries_per_call=64)
    batch = lime.explain(model, xs, target=[0, 1, 0, 1])
    assert batch.diagnostics["n_segments"].tolist() == [16, 9, 16, 16]
    for i in range(4):
        alone = LIME(n_samples=200, segmentation=labels[i], seed=5, array_backend=backend, queries_per_call=64)
        single = alone.explain(model, xs[i], target=[0, 1, 0, 1][i])
        np.testing.assert_array_equal(batch.attributions[i], single.attributions)
        assert batch.diagnostics["r2"][i] == single.diagnostics["r2"]


def test_slic_on_a_greyscale_image_uses_the_greyscale_compactness():
    from skimage.segmentation import slic

    grey = np.random.default_rng(9).random((1, 32, 32)).astype(np.float32)
    labels, k = LIME(segmentation="slic", n_segments=12).segment(grey)
    expected = slic(grey[0].astype(np.float64), n_segments=12, compactness=0.1, start_label=0, channel_axis=None)
    np.testing.assert_array_equal(labels, relabel(expected)[0])
    assert k == len(np.unique(expected))


def test_auto_segmentation_and_quickshift_on_the_image_in_unit_range():
    from scipy import ndimage
    from skimage.segmentation import quickshift

    rng = np.random.default_rng(10)
    # a smooth texture within [0.58, 0.87]: its quickshift labels change if it were stretched to [0, 1]
    colour = (0.3 + 0.9 * ndimage.gaussian_filter(rng.random((3, 64, 64)), (0, 2, 2))).astype(np.float32)
    labels, k = LIME(seed=3).segment(colour)  # auto: a colour image with both sides ≥ 64
    hwc = np.moveaxis(colour, 0, -1).astype(np.float64)
    expected, k_expected = relabel(quickshift(hwc, kernel_size=4, max_dist=200, ratio=0.2, rng=3))
    np.testing.assert_array_equal(labels, expected)
    assert k == k_expected
    # outside [0, 1] (e.g. normalised units) the image is min-max scaled first: same as its scaled copy
    scaled = (colour - colour.min()) / (colour.max() - colour.min())
    np.testing.assert_array_equal(LIME(seed=3).segment(4 * colour - 2)[0], LIME(seed=3).segment(scaled)[0])
    # small colour images and large greyscale ones get the grid
    for shape in ((3, 28, 28), (1, 64, 64)):
        assert LIME().describe_segmentation(*shape) == "grid(7x7)"
        assert LIME().segment(rng.random(shape).astype(np.float32))[1] == 49
