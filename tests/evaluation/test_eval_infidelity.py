"""Infidelity (Yeh et al. 2019) and the completeness gap."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError
from onnxplain.evaluation import completeness_gap, infidelity
from onnxplain.explanation import Explanation
from onnxplain.models.base import FunctionModel

SHAPE = (2, 5, 4)
W = np.random.default_rng(11).normal(size=(3, 40))


def _linear(**kwargs) -> FunctionModel:
    return FunctionModel(lambda z: z.reshape(len(z), -1).astype(np.float64) @ W.T, SHAPE, 3, **kwargs)


def _quadratic() -> FunctionModel:
    def fn(z: np.ndarray) -> np.ndarray:
        f = z.reshape(len(z), -1).astype(np.float64)
        return np.stack([(f**2).sum(1), f.sum(1)], axis=1)

    return FunctionModel(fn, SHAPE, 2)


def _x(b: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(0.2, 0.9, size=(b, *SHAPE)).astype(np.float32)


@pytest.mark.parametrize("perturbation", ["subset", "gaussian"])
def test_scale_invariance(perturbation):
    model = _quadratic()
    x = _x()
    a = np.random.default_rng(1).normal(size=x.shape)
    scores = [
        infidelity(model, x, s * a, target=0, perturbation=perturbation, n_perturbations=30).score
        for s in (1.0, 7.5, 1e-3, -2.0)
    ]
    np.testing.assert_allclose(scores, scores[0], rtol=1e-9)
    raw = [
        infidelity(model, x, s * a, target=0, perturbation=perturbation, n_perturbations=30, normalize=False).score
        for s in (1.0, 7.5)
    ]
    assert raw[0] != pytest.approx(raw[1], rel=1e-3)  # without the optimal β the scale matters


@pytest.mark.parametrize("perturbation", ["subset", "gaussian"])
def test_exact_attribution_of_a_linear_model_has_zero_infidelity(perturbation):
    # f(x) − f(x − I) = Iᵀw exactly, so Φ = w is perfectly faithful; a wrong map is not
    model = _linear()
    x = _x()
    w1 = np.broadcast_to(W[1].reshape(SHAPE), x.shape)
    exact = infidelity(model, x, w1, target=1, perturbation=perturbation, n_perturbations=40)
    unnorm = infidelity(model, x, w1, target=1, perturbation=perturbation, n_perturbations=40, normalize=False)
    wrong = infidelity(model, x, np.broadcast_to(W[2].reshape(SHAPE), x.shape), target=1, perturbation=perturbation, n_perturbations=40)
    assert exact.score < 1e-8 and unnorm.score < 1e-8
    np.testing.assert_allclose(exact.params["beta"], 1.0, atol=1e-5)
    assert wrong.score > 1e3 * max(exact.score, 1e-12) and not wrong.higher_is_better


def test_subset_perturbation_changes_the_requested_share(recording_model):
    model, rec = recording_model(SHAPE)
    x = _x(2)
    infidelity(model, x, x, target=0, n_perturbations=5, subset_fraction=0.25)
    perturbed = rec.images[2:].reshape(2, 5, -1)  # the first two images: f(x)
    changed = perturbed != x.reshape(2, 1, -1)
    np.testing.assert_array_equal(changed.sum(axis=2), 10)  # round(0.25 · 40)
    assert perturbed.min() >= 0.0 and perturbed.max() <= 1.0  # clip(−0.2 z, 0, 1) on the subset


def test_independent_of_batch_size_and_seeded():
    x = _x()
    a = np.random.default_rng(1).normal(size=x.shape)
    r1 = infidelity(_quadratic(), x, a, target=0, n_perturbations=25, batch_size=7, seed=3)
    r2 = infidelity(_quadratic(), x, a, target=0, n_perturbations=25, batch_size=64, seed=3)
    r3 = infidelity(_quadratic(), x, a, target=0, n_perturbations=25, batch_size=64, seed=4)
    np.testing.assert_array_equal(r1.per_image, r2.per_image)
    assert r1.per_image[0] != r3.per_image[0]


def test_queries_batched_and_counted():
    model = _quadratic()
    x = _x()
    res = infidelity(model, x, x, n_perturbations=20, batch_size=16)
    assert res.n_queries == model.n_queries == 3 + 3 + 60  # argmax, f(x), perturbations
    assert model.n_calls == 2 + 4  # ⌈60/16⌉ chunks


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_perturbations": 0}, "n_perturbations"),
        ({"perturbation": "uniform"}, "perturbation"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"subset_fraction": 0.0}, "subset_fraction"),
        ({"clip": (1.0, 0.0)}, "clip"),
    ],
)
def test_infidelity_bad_options(kwargs, match):
    x = _x(1)
    with pytest.raises(InvalidInputError, match=match):
        infidelity(_quadratic(), x, x, **kwargs)


def test_completeness_gap_recorded_and_queried():
    model = _linear()
    x = _x(2)
    base = np.full(SHAPE, 0.1, np.float32)
    a = (x - base) * W[0].reshape(SHAPE)  # exact for a linear f: Σ a = f(x) − f(x̂)
    fx = model(x)[:, 0]
    fb = model(np.broadcast_to(base, x.shape))[:, 0]
    exp = Explanation(attributions=a, method="t", target=np.zeros(2, int), score=fx, baseline_score=fb)
    queried = completeness_gap(exp, model, x, baseline=base)
    recorded = completeness_gap(exp)
    assert queried.score < 1e-5 and recorded.score < 1e-5 and not queried.higher_is_better
    assert queried.n_queries == 4 and recorded.n_queries == 0
    shifted = Explanation(attributions=a + 0.01, method="t", target=np.zeros(2, int), score=fx, baseline_score=fb)
    np.testing.assert_allclose(completeness_gap(shifted).per_image, 0.01 * 40, rtol=1e-5)
    np.testing.assert_allclose(completeness_gap(shifted, model, x, baseline=base).per_image, 0.4, rtol=1e-4)
    # one explicand
    single = completeness_gap(shifted[1], model, x[1], baseline=0.1)
    assert single.score == pytest.approx(0.4, rel=1e-4)


def test_completeness_gap_errors():
    model = _linear()
    x = _x(2)
    exp = Explanation(attributions=x, method="t", target=np.zeros(2, int), score=np.zeros(2))
    with pytest.raises(InvalidInputError, match="baseline score"):
        completeness_gap(exp)
    with pytest.raises(InvalidInputError, match="explicand x"):
        completeness_gap(exp, model)
    with pytest.raises(InvalidInputError, match="explains 2"):
        completeness_gap(exp, model, x[:1])
    with pytest.raises(InvalidInputError, match="Explanation"):
        completeness_gap(x, model, x)
