"""Edges of the evaluation metrics found by mutation testing (``benchmarks/mutation.py``): defaults,
the smallest curves and top-k, clipping, substrates given by name, the completeness record and
error messages in full."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError
from onnxplain.evaluation import (
    agreement,
    aopc_deletion,
    completeness_gap,
    deletion_auc,
    infidelity,
    insertion_auc,
    random_order_reference,
)
from onnxplain.evaluation.ranking import step_counts, trapezoid_auc
from onnxplain.explanation import Explanation
from onnxplain.filters import blur
from onnxplain.models.base import FunctionModel

SHAPE = (2, 4, 4)


def linear_model(w: np.ndarray | None = None, **kwargs) -> FunctionModel:
    w = np.linspace(-1, 1, int(np.prod(SHAPE))) if w is None else w

    def fn(z):
        s = np.asarray(z, np.float64).reshape(len(z), -1) @ w
        return np.stack([s, -s, np.tanh(s)], axis=1)

    return FunctionModel(fn, SHAPE, 3, **kwargs)


def test_step_counts_and_the_two_point_trapezoid() -> None:
    np.testing.assert_array_equal(step_counts(10, 3), [0, 3, 6, 9, 10])
    np.testing.assert_array_equal(step_counts(10, 4, n_points=3), [0, 4, 8])
    assert step_counts(10, 3).dtype == np.int64
    with pytest.raises(InvalidInputError, match="^step must be a positive integer"):
        step_counts(10, 0)
    assert trapezoid_auc(np.array([1.0, 3.0])) == 2.0  # two points: one trapezoid
    np.testing.assert_allclose(trapezoid_auc(np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])), [0.5, 1.0])
    with pytest.raises(InvalidInputError, match="at least two points"):
        trapezoid_auc(np.array([1.0]))


def test_named_blur_substrate_and_replacement_use_the_given_kernel() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, *SHAPE)).astype(np.float32)
    a = rng.normal(size=x.shape)
    blurred = blur(x, 3, 1.0)
    for metric in (insertion_auc, deletion_auc):
        named = metric(linear_model(), x, a, target=0, substrate="blur", blur_size=3, blur_sigma=1.0, step=3)
        given = metric(linear_model(), x, a, target=0, substrate=blurred, step=3)
        np.testing.assert_allclose(named.curves, given.curves, rtol=1e-6)
    positive = linear_model(np.ones(int(np.prod(SHAPE))))  # f(x) > 0, as the normalised AOPC needs
    named = aopc_deletion(positive, x, a, target=0, replacement="blur", blur_size=3, blur_sigma=1.0)
    given = aopc_deletion(positive, x, a, target=0, replacement=blurred)
    np.testing.assert_allclose(named.curves, given.curves, rtol=1e-6)


def test_aopc_needs_a_positive_start_not_a_positive_first_deletion() -> None:
    # f(x) = −1 but f = +1 once the first pixel is gone: the mean start F̄_0 is what must be > 0
    x = np.ones((1, *SHAPE), np.float32)

    def fn(z):
        s = np.where(np.asarray(z).reshape(len(z), -1).min(axis=1) > 0, -1.0, 1.0)
        return np.stack([s, -s], axis=1)

    model = FunctionModel(fn, SHAPE, 2)
    with pytest.raises(InvalidInputError, match="mean f"):
        aopc_deletion(model, x, x, target=0)
    assert aopc_deletion(model, x, x, target=1).score == pytest.approx(1 - np.mean([1] + [-1] * 16))


def test_infidelity_defaults_and_clipping_at_the_top() -> None:
    x = np.full((1, *SHAPE), 0.5, np.float32)
    res = infidelity(linear_model(), x, x, target=0)
    assert res.params["n_perturbations"] == 100 and res.params["noise_std"] == 0.2 and res.params["seed"] == 0
    assert res.params["subset_fraction"] == pytest.approx(1 / 3) and res.params["clip"] == (0.0, 1.0)
    assert res.n_queries == 1 + 100  # f(x) and the draws (the target is given: no top-class query)
    # noise_std 3: −σz exceeds 1 for a third of the draws; clipped, a perturbed value never leaves [0, 1]
    seen: list[np.ndarray] = []

    def fn(z):
        seen.append(np.asarray(z).copy())
        s = np.asarray(z, np.float64).reshape(len(z), -1).sum(1)
        return np.stack([s, -s], axis=1)

    infidelity(FunctionModel(fn, SHAPE, 2), x, x, target=0, noise_std=3.0, n_perturbations=40)
    values = np.concatenate(seen[1:])
    assert values.min() >= 0.0 and values.max() <= 1.0 and (values == 1.0).any() and (values == 0.0).any()


def test_completeness_record_in_full() -> None:
    x = np.random.default_rng(1).random((2, *SHAPE)).astype(np.float32)
    model = linear_model()
    fx, fb = model(x)[:, 0], model(np.zeros_like(x))[:, 0]
    exp = Explanation(attributions=x, method="m", target=[0, 0], score=fx, baseline_score=fb)
    recorded = completeness_gap(exp)
    gaps = x.reshape(2, -1).sum(1) - (fx - fb)
    np.testing.assert_allclose(recorded.per_image, gaps, rtol=1e-6)
    assert recorded.name == "completeness_gap" and recorded.score == pytest.approx(np.abs(gaps).mean(), rel=1e-6)
    params = dict(recorded.params)
    np.testing.assert_allclose(params.pop("relative_gap"), np.abs(gaps) / np.abs(fx - fb), rtol=1e-6)
    np.testing.assert_allclose(params.pop("f_x"), fx)
    np.testing.assert_allclose(params.pop("f_baseline"), fb)
    assert params == {"source": "recorded", "baseline": 0.0, "method": "m"}
    queried = completeness_gap(exp, model, x, baseline=np.zeros(SHAPE, np.float32))
    assert queried.params["source"] == "model" and queried.params["baseline"] == "array"
    np.testing.assert_allclose(queried.per_image, gaps, rtol=1e-5)


def test_agreement_smallest_top_k_and_messages_in_full() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    res = agreement(a, b, fractions=(0.01,))
    assert res["top1%"].params["k"] == 1  # round(0.16) = 0 pixels: at least one
    with pytest.raises(InvalidInputError, match=r"^the maps differ in size: \(4, 4\) vs \(4, 3\)\.$"):
        agreement(a, b[:, :3])
    with pytest.raises(InvalidInputError, match=r"^batches of 2 and 3 maps cannot be compared\.$"):
        agreement(rng.normal(size=(2, 1, 4, 4)), rng.normal(size=(3, 1, 4, 4)))


def test_random_reference_refuses_other_metrics_by_name() -> None:
    model = linear_model()
    x = np.zeros(SHAPE, np.float32)
    names = "aopc_deletion, deletion_auc, insertion_auc"
    with pytest.raises(InvalidInputError, match=rf"^metric must be one of {names}, not 'infidelity'\.$"):
        random_order_reference("infidelity", model, x)
    with pytest.raises(InvalidInputError, match=rf"^random_order_reference supports {names} only\.$"):
        random_order_reference(infidelity, model, x)


def test_one_explicand_with_channel_or_single_plane_maps() -> None:
    # a single (C,H,W) explicand takes a (C,H,W), (1,H,W) or (H,W) map: the same ranking if the planes agree
    rng = np.random.default_rng(3)
    x = rng.random(SHAPE).astype(np.float32)
    plane = rng.normal(size=SHAPE[1:])
    positive = linear_model(np.ones(int(np.prod(SHAPE))))
    ref = aopc_deletion(positive, x, np.stack([plane, plane]), target=0)
    for a in (plane[None], plane):
        np.testing.assert_array_equal(aopc_deletion(positive, x, a, target=0).curves, ref.curves)
    assert ref.params["baseline"] == 0.0 and ref.curves.shape == (1, 17)


def test_ranks_follow_pythons_stable_descending_sort_with_many_ties() -> None:
    from onnxplain.evaluation.ranking import descending_ranks, ranking_keys

    keys = np.random.default_rng(4).integers(0, 4, size=(2, 300)).astype(float)  # long runs of ties
    ranks = descending_ranks(keys)
    for row, r in zip(keys, ranks, strict=True):
        order = sorted(range(300), key=lambda i: -row[i])
        np.testing.assert_array_equal(r[order], np.arange(300))
    a = np.random.default_rng(5).normal(size=(2, 3, 4, 4))
    np.testing.assert_allclose(ranking_keys(a, 3, "pixel", "abs"), np.abs(a).mean(1).reshape(2, -1))
    np.testing.assert_allclose(ranking_keys(a, 3, "pixel", "sum"), a.sum(1).reshape(2, -1))
    np.testing.assert_allclose(ranking_keys(a, 3, "dimension", "abs"), np.abs(a).reshape(2, -1))
    np.testing.assert_allclose(ranking_keys(a[:, :1], 3, "dimension", "sum"),
                               np.broadcast_to(a[:, :1], a.shape).reshape(2, -1))


def test_reduce_maps_shapes_and_default() -> None:
    from onnxplain.evaluation.agreement import reduce_maps

    a = np.random.default_rng(6).normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(reduce_maps(a), a.mean(1))  # signed channel mean by default
    np.testing.assert_allclose(reduce_maps(a[0]), a[:1].mean(1))
    np.testing.assert_allclose(reduce_maps(a[0, 0]), a[:1, 0])
    np.testing.assert_allclose(reduce_maps(a, "sum"), a.sum(1))
    np.testing.assert_allclose(reduce_maps(a, "abs"), np.abs(a).mean(1))
    exp = Explanation(attributions=a[0].astype(np.float32), method="m", target=0, score=1.0)
    np.testing.assert_allclose(reduce_maps(exp), a[:1].mean(1), rtol=1e-6)
    np.testing.assert_allclose(reduce_maps(exp, "abs"), np.abs(a[:1]).mean(1), rtol=1e-6)
    with pytest.raises(InvalidInputError, match=r"^a map must be \(H,W\), \(C,H,W\) or \(B,C,H,W\)"):
        reduce_maps(np.zeros((1, 1, 1, 2, 2)))


def test_small_maps_and_degenerate_inputs() -> None:
    import warnings

    rng = np.random.default_rng(7)
    a, b = 0.01 * rng.normal(size=(2, 1, 4, 4)), 0.01 * rng.normal(size=(2, 1, 4, 4))  # ‖a‖·‖b‖ < 1
    cos = agreement(a, b)["cosine"].per_image
    u, v = a.reshape(2, -1), b.reshape(2, -1)
    np.testing.assert_allclose(cos, (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1))
    # a zero map: β = 0 (no division by zero), infidelity = mean Δ²
    x = np.full((1, *SHAPE), 0.5, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = infidelity(linear_model(), x, np.zeros_like(x), target=0, n_perturbations=10)
        assert res.params["beta"][0] == 0.0 and np.isfinite(res.score) and res.score > 0
        # f(x) = f(x̂) and Σξ = 0: a zero gap, and a relative gap of 0/0 = NaN without a warning
        exp = Explanation(attributions=np.zeros(SHAPE, np.float32), method="m", target=0, score=0.3,
                          baseline_score=0.3)
        gap = completeness_gap(exp)
        assert gap.score == 0.0 and np.isnan(gap.params["relative_gap"][0])
    with pytest.raises(InvalidInputError, match=r"^the explicand contains NaN or infinite values\.$"):
        infidelity(linear_model(), np.full(SHAPE, np.nan, np.float32), np.zeros(SHAPE))
    negative = FunctionModel(lambda z: -np.ones((len(z), 2)), SHAPE, 2)
    message = r"^normalised AOPC divides by the mean f\(x\), which is not positive; score a model with output='probs'\.$"
    with pytest.raises(InvalidInputError, match=message):
        aopc_deletion(negative, np.ones(SHAPE, np.float32), np.ones(SHAPE), target=0)
    message = r"^per-image AOPC divides by f\(x\), which is not positive for some explicand; score a model with output='probs'\.$"
    with pytest.raises(InvalidInputError, match=message):
        aopc_deletion(negative, np.ones(SHAPE, np.float32), np.ones(SHAPE), target=0, aggregate="images")
