"""Insertion / deletion AUC: curve bookkeeping, ranking modes, broadcasting, AUC formula, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError
from onnxplain.evaluation import deletion_auc, insertion_auc, random_order_reference
from onnxplain.evaluation.ranking import trapezoid_auc
from onnxplain.filters import blur
from onnxplain.models.base import FunctionModel

SHAPE = (3, 6, 5)


def _data(b: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.0, size=(b, *SHAPE)).astype(np.float32)  # never equal to a zero substrate
    a = rng.normal(size=(b, *SHAPE))
    return x, a


@pytest.mark.parametrize("metric", [deletion_auc, insertion_auc])
@pytest.mark.parametrize("substrate", ["zero", "blur", 0.25])
def test_first_and_last_images_are_exact(recording_model, metric, substrate):
    model, rec = recording_model(SHAPE)
    x, a = _data()
    res = metric(model, x, a, target=0, step=4, substrate=substrate)
    n_points = math.ceil(30 / 4) + 1
    assert res.curve.shape == (n_points,) and res.curves.shape == (2, n_points)
    images = rec.images.reshape(2, n_points, *SHAPE)
    if substrate == "zero":
        sub = np.zeros_like(x)
    elif substrate == "blur":
        sub = blur(x, 11, 5.0)
    else:
        sub = np.full_like(x, 0.25)
    first, last = (x, sub) if metric is deletion_auc else (sub, x)
    np.testing.assert_array_equal(images[:, 0], first)
    np.testing.assert_array_equal(images[:, -1], last)
    # the curve is the model's score of exactly those images
    np.testing.assert_allclose(res.curves, images.reshape(2, n_points, -1).sum(-1), rtol=1e-6)


@pytest.mark.parametrize("metric", [deletion_auc, insertion_auc])
def test_pixel_mode_changes_step_pixels_in_all_channels(recording_model, metric):
    model, rec = recording_model(SHAPE)
    x, a = _data(1)
    step = 4
    metric(model, x[0], a[0], target=0, step=step, mode="pixel")
    images = rec.images
    changed = images[1:] != images[:-1]  # (L, C, H, W)
    per_step_pixels = changed.any(axis=1).reshape(len(changed), -1).sum(axis=1)
    expected = [min(step, 30 - k * step) for k in range(len(changed))]
    np.testing.assert_array_equal(per_step_pixels, expected)
    # a changed pixel changes in every channel
    np.testing.assert_array_equal(changed.all(axis=1), changed.any(axis=1))


@pytest.mark.parametrize("metric", [deletion_auc, insertion_auc])
def test_dimension_mode_changes_c_times_step_dims(recording_model, metric):
    model, rec = recording_model(SHAPE)
    x, a = _data(1)
    step = 4
    res = metric(model, x[0], a[0], target=0, step=step, mode="dimension")
    n_dims = 3 * 30
    assert res.params["features_per_step"] == 3 * step
    assert len(res.curve) == math.ceil(n_dims / (3 * step)) + 1
    images = rec.images
    per_step = (images[1:] != images[:-1]).reshape(len(images) - 1, -1).sum(axis=1)
    np.testing.assert_array_equal(per_step, [min(3 * step, n_dims - 3 * step * k) for k in range(len(per_step))])
    # dims go in the joint order of the signed map: the first step takes the 12 largest values
    first = np.flatnonzero((images[1] != images[0]).ravel())
    np.testing.assert_array_equal(np.sort(first), np.sort(np.argsort(-a[0].ravel(), kind="stable")[: 3 * step]))


def test_one_channel_maps_broadcast(linear_softmax):
    model, _, x = linear_softmax
    rng = np.random.default_rng(5)
    m = rng.normal(size=(len(x), 1, 8, 8))
    full = np.repeat(m, 3, axis=1)
    for mode in ("pixel", "dimension"):
        for metric in (deletion_auc, insertion_auc):
            r1 = metric(model, x, m, mode=mode, step=3)
            r2 = metric(model, x, full, mode=mode, step=3)
            r3 = metric(model, x, m[:, 0], mode=mode, step=3)  # (B, H, W)
            np.testing.assert_array_equal(r1.curves, r2.curves)
            np.testing.assert_array_equal(r1.curves, r3.curves)


def test_batch_equals_single_runs(linear_softmax):
    model, _, x = linear_softmax
    a = np.random.default_rng(1).normal(size=x.shape)
    for mode in ("pixel", "dimension"):
        batch = insertion_auc(model, x, a, mode=mode, step=5)
        singles = [insertion_auc(model, x[i], a[i], mode=mode, step=5).score for i in range(len(x))]
        np.testing.assert_allclose(batch.per_image, singles, rtol=1e-12)
        np.testing.assert_allclose(batch.score, np.mean(singles), rtol=1e-12)


def test_constant_curve_auc_equals_constant():
    np.testing.assert_allclose(trapezoid_auc(np.full(17, 0.37)), 0.37)
    model = FunctionModel(lambda z: np.tile([0.37, 0.63], (len(z), 1)), SHAPE, 2)
    x, a = _data()
    assert insertion_auc(model, x, a, target=0).score == pytest.approx(0.37, abs=1e-12)
    assert insertion_auc(model, x, a).score == pytest.approx(0.63, abs=1e-12)  # top class
    assert deletion_auc(model, x, a, target=0).score == pytest.approx(0.37, abs=1e-12)


def test_trapezoid_formula_on_a_line():
    # s_k = k/L on x in [0, 1] integrates to exactly 1/2
    assert trapezoid_auc(np.linspace(0, 1, 11)) == pytest.approx(0.5, abs=1e-15)


def test_attribution_ranking_beats_random_on_softmax_linear(linear_softmax):
    model, w, x = linear_softmax
    targets = model(x).argmax(axis=1)
    a = w[targets].reshape(x.shape) * x  # w ⊙ x: the exact contribution of each input to the logit
    for mode in ("pixel", "dimension"):
        kw = dict(mode=mode, step=2, target=targets)
        ins = insertion_auc(model, x, a, **kw)
        dele = deletion_auc(model, x, a, **kw)
        ins_r = random_order_reference("insertion_auc", model, x, seed=3, **kw)
        del_r = random_order_reference(deletion_auc, model, x, seed=3, **kw)
        assert ins.higher_is_better and not dele.higher_is_better
        assert ins.score > ins_r.score + 0.05
        assert dele.score < del_r.score - 0.05
        assert ins_r.name == "insertion_auc[random]"


def test_random_reference_is_seeded(linear_softmax):
    model, _, x = linear_softmax
    r1 = random_order_reference("deletion_auc", model, x, seed=7, step=4)
    r2 = random_order_reference("deletion_auc", model, x, seed=7, step=4)
    r3 = random_order_reference("deletion_auc", model, x, seed=8, step=4)
    np.testing.assert_array_equal(r1.curves, r2.curves)
    assert not np.array_equal(r1.curves, r3.curves)


def test_queries_are_batched_and_counted(recording_model):
    model, rec = recording_model(SHAPE)
    x, a = _data(3)
    res = deletion_auc(model, x, a, step=4, batch_size=7)  # target None: one argmax query per image
    n_points = math.ceil(30 / 4) + 1
    assert res.n_queries == 3 * n_points + 3 == model.n_queries
    assert model.n_calls == 1 + math.ceil(3 * n_points / 7)
    assert [len(b) for b in rec.batches[1:-1]] == [7] * (len(rec.batches) - 2)


def test_target_from_explanation(linear_softmax):
    from onnxplain.explanation import Explanation

    model, _, x = linear_softmax
    a = np.random.default_rng(2).normal(size=x.shape)
    exp = Explanation(attributions=a, method="test", target=np.full(len(x), 4), score=np.zeros(len(x)))
    r1 = insertion_auc(model, x, exp, step=4)
    r2 = insertion_auc(model, x, a, target=4, step=4)
    np.testing.assert_array_equal(r1.curves, r2.curves)
    assert r1.n_queries == r1.curves.size  # no argmax queries needed


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": 0}, "step"),
        ({"step": 2.5}, "step"),
        ({"mode": "channel"}, "mode"),
        ({"substrate": "noise"}, "substrate"),
        ({"substrate": np.zeros((2, 2))}, "substrate"),
        ({"reduce": "max"}, "reduce"),
        ({"target": 9}, "out of range"),
    ],
)
def test_bad_options(recording_model, kwargs, match):
    model, _ = recording_model(SHAPE)
    x, a = _data()
    with pytest.raises(InvalidInputError, match=match):
        deletion_auc(model, x, a, **kwargs)


def test_bad_inputs(recording_model):
    model, _ = recording_model(SHAPE)
    x, a = _data()
    with pytest.raises(InvalidInputError, match="do not fit"):
        insertion_auc(model, x, a[:, :2])
    with pytest.raises(InvalidInputError, match="do not fit"):
        insertion_auc(model, x[0], a)
    bad = a.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        insertion_auc(model, x, bad)
    with pytest.raises(InvalidInputError, match="explicand"):
        insertion_auc(model, x[:, :2], a)
    flat = FunctionModel(lambda z: z[:, :2], (30,), 2)
    with pytest.raises(InvalidInputError, match=r"\(C, H, W\)"):
        insertion_auc(flat, np.zeros(30), np.zeros(30))
    with pytest.raises(InvalidInputError, match="supports"):
        random_order_reference(trapezoid_auc, model, x)
    with pytest.raises(InvalidInputError, match="metric must be"):
        random_order_reference("aopc", model, x)
