"""GEEX and GE on analytic models (known attributions), axioms, invariants and bad input.

Statistical checks are seeded (the explainers draw everything from ``seed``), so they are
deterministic; each states the Monte-Carlo error it allows.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import GE, GEEX
from onnxplain.errors import InvalidInputError, NonFiniteOutputError, QueryBudgetExceeded
from onnxplain.models.base import FunctionModel

from .conftest import flat, scalar_model

SHAPE = (1, 4, 4)
RNG = np.random.default_rng(12345)
W = RNG.normal(size=SHAPE)
X = RNG.uniform(0.2, 1.0, size=SHAPE).astype(np.float32)


def linear_tolerance(w: np.ndarray, dx: np.ndarray, n_queries: int) -> np.ndarray:
    """5 standard errors of ξ_l for a linear f with mirror pairs: a pair gives (w·δ)δ_l/σ²,
    of variance ‖w‖² + w_l², so std(ξ_l) = |Δx_l|·sqrt(‖w‖² + w_l²)/sqrt(n/2)."""
    return 5 * np.abs(dx) * np.sqrt((w**2).sum() + w**2) / np.sqrt(n_queries // 2)


def linear(bias: float = 0.0):
    return scalar_model(lambda r: r @ W.ravel() + bias, SHAPE)


def quadratic():
    return scalar_model(lambda r: 0.5 * (r**2).sum(axis=1), SHAPE)


# -- analytic models ---------------------------------------------------------------------------


def test_linear_model_gives_weights_times_delta():
    exp = GEEX(n_queries=20000, sigma=0.1).explain(linear(), X, target=0)
    assert np.all(np.abs(exp.attributions - W * X) <= linear_tolerance(W, X, 20000))
    assert exp.baseline_score == pytest.approx(0.0)
    assert exp.score == pytest.approx(float((W * X).sum()), rel=1e-6)
    assert abs(exp.completeness_gap) < 0.1 * abs(exp.score)


def test_constant_offset_cancels_in_mirror_pairs():
    geex = GEEX(n_queries=4000, sigma=0.1)
    plain = geex.explain(linear(0.0), X, target=0).attributions
    shifted = geex.explain(linear(1e3), X, target=0).attributions
    np.testing.assert_allclose(shifted, plain, rtol=1e-5, atol=1e-7)
    # Without mirroring the offset's f·δ term swamps the estimate (the test can fail).
    unpaired = GEEX(n_queries=4000, sigma=0.1, mirror=False).explain(linear(1e3), X, target=0)
    assert np.abs(unpaired.attributions - W * X).max() > 1.0


def test_quadratic_gives_half_squares_and_completeness():
    # ∇f = z, Gaussian noise leaves it unbiased; IG from 0 is x²/2. A σ scale error (e.g. the
    # reference's 1/(4σ)) or an α range missing half the path would be off by ≥ 2×.
    exp = GEEX(n_queries=20000, sigma=0.1).explain(quadratic(), X, target=0)
    np.testing.assert_allclose(exp.attributions, X**2 / 2, atol=0.04)
    assert abs(exp.completeness_gap) < 0.05 * (exp.score - exp.baseline_score)


def test_quadratic_from_a_constant_baseline_integrates_from_that_baseline():
    # From x̂ = b the path gradient averages to (x + b)/2, so ξ = (x² − b²)/2; a query centre that
    # left out x̂ (written for the zero default) would give (x − b)²/2, off by b(x − b) ≥ 0.01 here.
    b = 0.25
    exp = GEEX(n_queries=20000, sigma=0.1, baseline=b).explain(quadratic(), X, target=0)
    np.testing.assert_allclose(exp.attributions, (X**2 - b**2) / 2, atol=0.04)
    assert np.abs(exp.attributions - (X - b) ** 2 / 2).max() > 0.08
    assert abs(exp.completeness_gap) < 0.05 * (exp.score - exp.baseline_score)


def test_reference_preset_reproduces_reference_conventions():
    # Reference: std σ/2 applied, divided by σ² → ∇/(4σ); α_k = k/(n*−1) covers [0, ½) so the
    # quadratic's path mean of α is ¼: ξ ≈ x²/4 / (4σ).
    sigma = 0.2
    ref = GEEX.reference(n_queries=20000, sigma=sigma)
    assert (ref.alpha, ref.noise_channels, ref.scale, ref.applied_std) == ("reference", "shared", "reference", 0.1)
    exp = ref.explain(quadratic(), X, target=0)
    np.testing.assert_allclose(exp.attributions, X**2 / 4 / (4 * sigma), atol=0.05)


def test_sigmoids_switching_late_on_the_path_get_their_attribution():
    # f = Σ_i sigmoid(k(z_i − t_i)), x = 1, x̂ = 0: feature i switches at α = t_i; exact IG
    # (separable) is ξ_i = s(k(1 − t_i)) − s(−k t_i).
    n = 16
    t = np.linspace(0.05, 0.95, n)
    k = 12.0

    def f(r):
        return (1.0 / (1.0 + np.exp(-k * (r - t)))).sum(axis=1)

    model = scalar_model(f, (1, 4, 4))
    exact = 1 / (1 + np.exp(-k * (1 - t))) - 1 / (1 + np.exp(k * t))
    x = np.ones((1, 4, 4), np.float32)
    xi = GEEX(n_queries=40000, sigma=0.05).explain(model, x, target=0).attributions.ravel()
    assert np.corrcoef(xi, exact)[0, 1] > 0.9
    late = t > 0.5
    assert xi[late].sum() > 0.8 * exact[late].sum()
    # The reference's half path gives the late features (almost) nothing: the test has teeth.
    half = GEEX(n_queries=40000, sigma=0.05, alpha="reference").explain(model, x, target=0)
    assert half.attributions.ravel()[late].sum() < 0.3 * exact[late].sum()


def test_rgb_channel_weights_independent_vs_shared_noise():
    shape = (3, 3, 3)
    rng = np.random.default_rng(5)
    w = np.stack([np.full((3, 3), 1.0), np.full((3, 3), -2.0), np.full((3, 3), 0.5)])
    x = rng.uniform(0.2, 1.0, size=shape).astype(np.float32)
    model = scalar_model(lambda r: r @ w.ravel(), shape)
    indep = GEEX(n_queries=20000, sigma=0.1).explain(model, x, target=0)
    assert np.all(np.abs(indep.attributions - w * x) <= linear_tolerance(w, x, 20000))
    shared = GEEX(n_queries=20000, sigma=0.1, noise_channels="shared").explain(model, x, target=0)
    w_shared = np.broadcast_to(w.sum(axis=0), x.shape)  # one noise plane sees Σ_c w_c
    assert np.all(np.abs(shared.attributions - w_shared * x) <= linear_tolerance(w.sum(0), x, 20000))
    # The two modes differ by far more than the tolerance: the test tells them apart.
    assert np.abs(shared.attributions - w * x).max() > 1.0


def test_features_equal_to_the_baseline_get_exactly_zero():
    baseline = np.zeros(SHAPE, np.float32)
    baseline[0, :2] = X[0, :2]  # Δx = 0 on the top two rows
    for smoothing in (None, (5, 0.7)):
        exp = GEEX(n_queries=500, baseline=baseline, smoothing=smoothing).explain(quadratic(), X, target=0)
        assert np.all(exp.attributions[0, :2] == 0.0)
        assert np.all(exp.attributions[0, 2:] != 0.0)


def test_smoothing_estimates_a_blurred_gradient_with_preserved_scale():
    # Linear f with constant weights: the smoothed estimator is Cov(δ)w / Var(δ) per pixel =
    # (A Aᵀ 1)_p / diag(A Aᵀ)_p · w: > w (neighbours add up), same for every interior pixel.
    shape = (1, 12, 12)
    model = scalar_model(lambda r: r.sum(axis=1), shape)
    x = np.ones(shape, np.float32)
    from onnxplain.filters import filter_operator, gaussian_taps

    taps = gaussian_taps(5, 0.7)
    taps /= np.linalg.norm(taps)
    a = filter_operator(12, taps)
    cov = (a @ a.T).sum(axis=1)
    expected = np.outer(cov, cov) / np.outer((a**2).sum(1), (a**2).sum(1))
    exp = GEEX(n_queries=60000, sigma=0.1, smoothing=(5, 0.7)).explain(model, x, target=0)
    np.testing.assert_allclose(exp.attributions[0], expected, rtol=0.15)


def test_ge_estimates_the_gradient_at_x():
    exp = GE(n_queries=20000, sigma=0.1).explain(quadratic(), X, target=0)
    np.testing.assert_allclose(exp.attributions, X, atol=0.08)
    assert exp.baseline_score is None and exp.completeness_gap is None
    assert exp.method == "ge" and exp.n_queries == 20001


# -- the real model --------------------------------------------------------------------------------


def test_completeness_on_the_demo_cnn(demo_models):
    # Pooled over 3 seeds × 10 digits: one seed's median over a few digits is itself noisy
    # (measured 0.05–0.135 across seeds with numpy's ziggurat normals, 0.05–0.08 with ours).
    onnx_model, _, digits = demo_models
    rels = []
    for seed in range(3):
        exp = GEEX(n_queries=5000, sigma=0.1, seed=seed).explain(onnx_model, digits)
        diff = np.asarray(exp.score) - np.asarray(exp.baseline_score)
        informative = np.abs(diff) > 0.5  # a zero image is itself a confident "1": skip Δf ≈ 0
        assert informative.sum() >= 8
        rels.append(np.abs(exp.completeness_gap[informative]) / np.abs(diff[informative]))
    rel = np.concatenate(rels)
    assert np.median(rel) < 0.1 and rel.mean() < 0.12 and rel.max() < 0.4


def test_onnx_and_torch_models_give_the_same_map(demo_models):
    onnx_model, torch_model, digits = demo_models
    geex = GEEX(n_queries=1000)
    a = geex.explain(onnx_model, digits[:2]).attributions
    b = geex.explain(torch_model, digits[:2]).attributions
    np.testing.assert_allclose(a, b, atol=1e-5 * np.abs(a).max())


def test_torch_backend_feeds_the_onnx_model_device_tensors(demo_models):
    onnx_model, _, digits = demo_models
    cpu = GEEX(n_queries=2000, array_backend="numpy").explain(onnx_model, digits[0])
    dev = GEEX(n_queries=2000, array_backend="torch").explain(onnx_model, digits[0])
    again = GEEX(n_queries=2000, array_backend="torch", queries_per_call=128).explain(onnx_model, digits[0])
    assert dev.params["array_backend"] == "torch"
    np.testing.assert_array_equal(dev.attributions, again.attributions)
    # Different random streams, same estimand: each agrees with a 20k-query map as well as
    # the other does (measured: 0.74 numpy, 0.77 torch; a wrong torch path scores ~0).
    big = GEEX(n_queries=20000, seed=9).explain(onnx_model, digits[0]).attributions.ravel()
    corr = [np.corrcoef(exp.attributions.ravel(), big)[0, 1] for exp in (cpu, dev)]
    assert min(corr) > 0.6 and abs(corr[0] - corr[1]) < 0.15
    for exp in (cpu, dev):
        assert abs(exp.completeness_gap) < 0.3 * abs(exp.score - exp.baseline_score)  # at 2k queries


# -- determinism, batching, accounting ---------------------------------------------------------------


def test_same_seed_same_map_whatever_the_batch_size():
    xs = np.stack([X, X * 0.5, X[:, ::-1].copy()])
    ref = GEEX(n_queries=1000, seed=3).explain(quadratic(), xs, target=0)
    for batch_size in (1, 64, 100, 5000):
        other = GEEX(n_queries=1000, seed=3, queries_per_call=batch_size).explain(quadratic(), xs, target=0)
        np.testing.assert_array_equal(other.attributions, ref.attributions)
    single = GEEX(n_queries=1000, seed=3).explain(quadratic(), xs[1], target=0)
    np.testing.assert_array_equal(single.attributions, ref.attributions[1])
    assert not np.array_equal(GEEX(n_queries=1000, seed=4).explain(quadratic(), xs, target=0).attributions, ref.attributions)


def test_torch_backend_same_map_whatever_the_batch_size():
    pytest.importorskip("torch")
    a = GEEX(n_queries=1000, array_backend="torch", queries_per_call=64).explain(quadratic(), X, target=0)
    b = GEEX(n_queries=1000, array_backend="torch", queries_per_call=1000).explain(quadratic(), X, target=0)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    np.testing.assert_allclose(a.attributions, X**2 / 2, atol=0.1)


def test_batched_explicands_share_model_calls():
    model = scalar_model(lambda r: 0.5 * (r**2).sum(axis=1), SHAPE, batch_size=4096)
    xs = np.stack([X] * 4)
    exp = GEEX(n_queries=256, queries_per_call=1024).explain(model, xs, target=0)
    # 1 call for f(x), 1 for f(x̂), then 4 explicands × 256 queries in one call.
    assert model.n_calls == 3
    assert model.n_queries == exp.n_queries == 4 * (256 + 2)
    assert exp.attributions.shape == (4, *SHAPE)
    assert exp.target.shape == (4,) and exp.score.shape == (4,) and exp.completeness_gap.shape == (4,)
    assert exp[2].attributions.shape == SHAPE


def test_query_count_and_odd_budget():
    model = quadratic()
    exp = GEEX(n_queries=101).explain(model, X, target=0)
    assert exp.params["n_perturbations"] == 100  # an unpaired query is not made
    assert model.n_queries == exp.n_queries == 102
    model.reset_counters()
    unpaired = GEEX(n_queries=101, mirror=False).explain(model, X, target=0)
    assert model.n_queries == unpaired.n_queries == 103
    assert exp.params["seed"] == 0 and exp.params["sigma"] == 0.1 and exp.params["baseline"] == "zero"


def test_blur_and_array_baselines():
    model = quadratic()
    blurred = GEEX(n_queries=200, baseline="blur").explain(model, X, target=0)
    from onnxplain.filters import blur

    xhat = blur(X[None])[0]
    assert blurred.baseline_score == pytest.approx(0.5 * float((xhat.astype(np.float64) ** 2).sum()), rel=1e-5)
    const = GEEX(n_queries=200, baseline=0.25).explain(model, X, target=0)
    assert const.baseline_score == pytest.approx(0.5 * 16 * 0.25**2)


def test_top_class_is_the_default_target():
    model = linear()
    exp = GEEX(n_queries=100).explain(model, np.stack([X, -X]))
    score = float((W * X).sum())
    assert list(exp.target) == ([0, 1] if score > 0 else [1, 0])


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_queries": 0}, "n_queries"),
        ({"n_queries": 1}, "n_queries"),
        ({"n_queries": 2.5}, "n_queries"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"smoothing": (4, 0.7)}, "odd"),
        ({"smoothing": (5, 0.0)}, "sigma"),
        ({"smoothing": 5}, "smoothing"),
        ({"alpha": "sobol"}, "alpha"),
        ({"noise_channels": "rgb"}, "noise_channels"),
        ({"baseline": "black"}, "baseline"),
        ({"baseline": np.zeros((4, 4))}, "baseline"),
        ({"baseline": np.full(SHAPE, np.nan)}, "baseline"),
        ({"baseline": float("inf")}, "baseline"),
        ({"seed": -1}, "seed"),
        ({"queries_per_call": 0}, "queries_per_call"),
        ({"array_backend": "cuda"}, "array_backend"),
        ({"mirror": "yes"}, "mirror"),
        ({"scale": "half"}, "scale"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        GEEX(**kwargs)


def test_explain_rejects_bad_input():
    model = quadratic()
    with pytest.raises(InvalidInputError, match="shape"):
        GEEX(n_queries=10).explain(model, np.zeros((1, 5, 4), np.float32))
    with pytest.raises(InvalidInputError, match="baseline"):
        GEEX(n_queries=10, baseline=np.zeros((1, 3, 3), np.float32)).explain(model, X)
    with pytest.raises(InvalidInputError, match="out of range"):
        GEEX(n_queries=10).explain(model, X, target=2)
    with pytest.raises(InvalidInputError, match="NaN"):
        GEEX(n_queries=10).explain(model, np.full(SHAPE, np.nan, np.float32))
    assert model.n_queries == 0  # every check happened before a query
    flat_model = FunctionModel(lambda z: np.zeros((len(z), 2)), (16,), 2)
    with pytest.raises(InvalidInputError, match=r"\(C,H,W\)"):
        GEEX(n_queries=10).explain(flat_model, np.zeros(16))


def test_non_finite_outputs_and_budget():
    def nan_far(z):
        r = flat(z)
        v = np.where(np.abs(r).max(axis=1) > 1.2, np.nan, r.sum(axis=1))
        return np.stack([v, -v], axis=1)

    with pytest.raises(NonFiniteOutputError):
        GEEX(n_queries=200, sigma=1.0).explain(FunctionModel(nan_far, SHAPE, 2), X, target=0)
    limited = scalar_model(lambda r: r.sum(axis=1), SHAPE, max_queries=100)
    with pytest.raises(QueryBudgetExceeded, match="102"):
        GEEX(n_queries=100).explain(limited, X)
    assert limited.n_queries == 0  # refused before the first query
    GEEX(n_queries=98).explain(limited, X)
    assert limited.n_queries == 100
