"""KernelSHAP: additive games, exact Shapley values of a small game, a numpy oracle on the rows
re-derived from the seed, parity with Captum's ``KernelShap`` fed the same rows, the sampling law,
efficiency, query accounting, invariances and errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from onnxplain.blackbox import KernelSHAP
from onnxplain.blackbox.kernelshap import size_distribution
from onnxplain.blackbox.sampling import block_ranges
from onnxplain.blackbox.segments import grid_segments
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.base import FunctionModel
from onnxplain.registry import get_method

from .conftest import flat

SHAPE = (3, 12, 12)
LABELS = grid_segments(12, 12, 3)  # M = 9 squares of 4×4


def smooth_fn(rng: np.random.Generator, shape=SHAPE):
    proj = rng.normal(size=(int(np.prod(shape)), 3))

    def f(z):
        u = flat(z) @ proj / 10
        return np.tanh(u) + 0.3 * u * u[:, [1, 2, 0]]

    return f


def images(z: np.ndarray, labels: np.ndarray, x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x on the segments of each coalition row, b elsewhere: (n, C, H, W) float32."""
    on = z[:, labels][:, None]  # (n, 1, H, W)
    return np.where(on > 0.5, x[None], b[None]).astype(np.float32)


def all_rows(ks: KernelSHAP, m: int) -> np.ndarray:
    """The n_samples − 2 drawn rows, re-derived block by block from the public API."""
    return np.concatenate([ks.coalitions(m, k, hi - lo) for k, (lo, hi) in enumerate(block_ranges(ks.n_samples - 2))])


@pytest.mark.parametrize("efficiency", ["exact", "captum"])
@pytest.mark.parametrize("paint", ["spread", "copy"])
def test_additive_model_gets_each_segments_contribution(efficiency: str, paint: str):
    rng = np.random.default_rng(0)
    w, x, b = rng.normal(size=SHAPE), rng.random(SHAPE).astype(np.float32), rng.random(SHAPE).astype(np.float32)
    w[:, LABELS == 4] = 0.0  # a dummy segment
    model = FunctionModel(lambda z: np.stack([flat(z) @ w.ravel()] * 2, axis=1), SHAPE, 2)
    exp = KernelSHAP(200, segmentation=LABELS, baseline=b, efficiency=efficiency, paint=paint).explain(model, x, 0)
    phi = np.bincount(LABELS.ravel(), weights=(w * (x.astype(np.float64) - b)).sum(axis=0).ravel())  # c_k·(x − b)
    per_element = phi[LABELS] if paint == "copy" else (phi / (3 * 16))[LABELS]
    # The game is linear in z, so least squares recovers it whatever the weights; float32 maps.
    np.testing.assert_allclose(exp.attributions, np.broadcast_to(per_element, SHAPE), rtol=1e-5, atol=1e-6)
    assert np.all(exp.attributions[:, LABELS == 4] == pytest.approx(0.0, abs=1e-6))


def shapley_values(v, m: int) -> np.ndarray:
    """Exact Shapley values of a game given on all 2^M coalitions (plain enumeration)."""
    phi = np.zeros(m)
    for i in range(m):
        for s in itertools.product([0, 1], repeat=m):
            if s[i] == 0:
                k = sum(s)
                weight = math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m)
                with_i = list(s)
                with_i[i] = 1
                phi[i] += weight * (v[tuple(with_i)] - v[s])
    return phi


QUADRANTS = grid_segments(8, 8, 2)  # M = 4


def quadrant_game(order: int):
    """A game on the presence q_k of the 4 quadrants (x = 1, x̂ = 0): segment 3 is a dummy, 0 and
    1 are symmetric; interactions of order 2 (and 3 if ``order`` is 3)."""

    def game(z):
        q = np.stack([flat(z)[:, (QUADRANTS == k).ravel()].mean(axis=1) for k in range(4)], axis=1)
        v = 2 * q[:, 0] * q[:, 1] + q[:, 0] + q[:, 1] + 3 * q[:, 2] * (q[:, 0] + q[:, 1]) - q[:, 2] ** 2
        if order == 3:
            v = v + 4 * q[:, 0] * q[:, 1] * q[:, 2]
        return np.stack([v, -v], axis=1)

    ones, zeros = np.ones((1, 8, 8), np.float32), np.zeros((1, 8, 8), np.float32)
    table = {s: game(images(np.array([s], float), QUADRANTS, ones, zeros))[0, 0] for s in itertools.product([0, 1], repeat=4)}
    return FunctionModel(game, (1, 8, 8), 2), shapley_values(table, 4), ones, zeros


def quadrant_values(exp) -> np.ndarray:
    return exp.attributions[0][[0, 0, 4, 4], [0, 4, 0, 4]]


@pytest.mark.parametrize("efficiency", ["exact", "captum"])
def test_paired_rows_are_exact_on_second_order_games(efficiency: str):
    """Derived: a complementary pair flips s = 2z − 1 to −s, so the paired design fits the game's
    odd part with the linear terms and its even part with the intercept; a game with interactions
    of order ≤ 2 has a linear odd part whose z-coefficients are its Shapley values. So 40 rows
    already give the exact values (dummy 0, symmetric segments equal)."""
    model, exact, x, b = quadrant_game(order=2)
    assert exact[3] == 0 and exact[0] == exact[1] != 0
    exp = KernelSHAP(40, segmentation=QUADRANTS, baseline=b, efficiency=efficiency, paint="copy").explain(model, x, 0)
    np.testing.assert_allclose(quadrant_values(exp), exact, atol=1e-5)


NINTHS = grid_segments(9, 9, 3)  # M = 9


def ninths_game(z):
    """Interactions up to order 4 on the presence q of 9 cells: 8 is a dummy, 0 and 1 symmetric."""
    q = np.stack([flat(z)[:, (NINTHS == k).ravel()].mean(axis=1) for k in range(9)], axis=1)
    v = 2 * q[:, 0] * q[:, 1] + q[:, 0] + q[:, 1] + 3 * q[:, 2] * (q[:, 0] + q[:, 1]) - q[:, 2] ** 2
    v = v + 4 * q[:, 0] * q[:, 1] * q[:, 2] + q[:, 3] * q[:, 4] * q[:, 5] * q[:, 6] - 2 * q[:, 7] + q[:, 5] * q[:, 7]
    return np.stack([v, -v], axis=1)


@pytest.mark.parametrize(("sampling", "tolerance"), [("paired", 0.012), ("captum", 0.05)])
def test_converges_to_the_shapley_values_of_a_higher_order_game(sampling: str, tolerance: float):
    """No design is exact with three- and four-way interactions: 20 000 rows estimate the values
    to 0.4–0.6 % (paired) and 1.7–3.1 % (captum) of their scale over seeds 0–3 (Monte-Carlo error;
    a sampler that drew sizes uniformly instead of by the kernel is off by ≈ 1.8 % paired). The
    dummy gets ≈ 0, the symmetric pair equal shares, and efficiency holds exactly."""
    ones, zeros = np.ones((1, 9, 9), np.float32), np.zeros((1, 9, 9), np.float32)
    table = {
        s: ninths_game(images(np.array([s], float), NINTHS, ones, zeros))[0, 0]
        for s in itertools.product([0, 1], repeat=9)
    }
    exact = shapley_values(table, 9)
    assert exact[8] == 0 and exact[0] == exact[1]
    exp = KernelSHAP(20_000, segmentation=NINTHS, baseline=zeros, sampling=sampling, paint="copy", seed=1).explain(
        FunctionModel(ninths_game, (1, 9, 9), 2), ones, 0
    )
    values = exp.attributions[0][::3, ::3].ravel()
    scale = np.abs(exact).max()
    np.testing.assert_allclose(values, exact, atol=tolerance * scale)
    assert abs(values[8]) < tolerance * scale and abs(values[0] - values[1]) < tolerance * scale
    assert values.sum() == pytest.approx(exact.sum(), abs=1e-5)


def eliminated_fit(z: np.ndarray, y: np.ndarray, f_x: float, f_b: float) -> np.ndarray:
    """shap's KernelExplainer solve: φ_M = Δ − Σ_{j<M} φ_j substituted, then ordinary least squares
    of y − f_b − z_M Δ on z_j − z_M (an independent derivation of the constrained fit)."""
    delta = f_x - f_b
    design = z[:, :-1] - z[:, -1:]
    head = np.linalg.lstsq(design, y - f_b - z[:, -1] * delta, rcond=None)[0]
    return np.append(head, delta - head.sum())


def weighted_fit(z: np.ndarray, y: np.ndarray, f_x: float, f_b: float) -> tuple[np.ndarray, float]:
    """Captum's fit written out: rows 1 and 0 weighted 10⁶, intercept column, √w-scaled lstsq."""
    m = z.shape[1]
    rows = np.vstack([np.ones(m), np.zeros(m), z])
    target = np.concatenate([[f_x, f_b], y])
    sw = np.sqrt(np.concatenate([[1e6, 1e6], np.ones(len(z))]))
    design = np.hstack([np.ones((len(rows), 1)), rows]) * sw[:, None]
    theta = np.linalg.lstsq(design, target * sw, rcond=None)[0]
    return theta[1:], float(theta[0])


@pytest.mark.parametrize("sampling", ["paired", "captum"])
@pytest.mark.parametrize("efficiency", ["exact", "captum"])
def test_matches_a_numpy_oracle_on_the_rows_rederived_from_the_seed(sampling: str, efficiency: str):
    rng = np.random.default_rng(2)
    fn = smooth_fn(rng)
    x, b = rng.random(SHAPE).astype(np.float32), rng.random(SHAPE).astype(np.float32)
    ks = KernelSHAP(150, segmentation=LABELS, baseline=b, sampling=sampling, efficiency=efficiency, paint="copy", seed=7)
    exp = ks.explain(FunctionModel(fn, SHAPE, 3), x, target=1)
    z = all_rows(ks, 9)
    assert z.shape == (148, 9) and np.all((z.sum(1) > 0) & (z.sum(1) < 9))
    y = fn(images(z, LABELS, x, b))[:, 1]
    f_x, f_b = fn(x[None])[0, 1], fn(b[None])[0, 1]
    if efficiency == "exact":
        phi, intercept = eliminated_fit(z, y, f_x, f_b), f_b
    else:
        phi, intercept = weighted_fit(z, y, f_x, f_b)
    np.testing.assert_allclose(exp.attributions[0][::4, ::4].ravel(), phi, rtol=1e-5, atol=1e-6 * np.abs(phi).max())
    assert exp.diagnostics["intercept"] == pytest.approx(intercept, rel=1e-6)


@pytest.mark.parametrize("sampling", ["captum", "paired"])
def test_parity_with_captum_given_the_same_rows(sampling: str):
    torch = pytest.importorskip("torch")
    captum_attr = pytest.importorskip("captum.attr")
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(4 * 144, 5)
    ).double()

    def fn(z):
        with torch.no_grad():
            return net(torch.as_tensor(np.asarray(z), dtype=torch.float64)).numpy()

    rng = np.random.default_rng(3)
    x, b = rng.random(SHAPE).astype(np.float32), rng.random(SHAPE).astype(np.float32)
    ks = KernelSHAP(200, segmentation=LABELS, baseline=b, sampling=sampling, efficiency="captum", paint="copy")
    ours = ks.explain(FunctionModel(fn, SHAPE, 5), x, target=2).attributions
    rows = all_rows(ks, 9)
    cap = captum_attr.KernelShap(lambda t: net(t.double()))

    def same_rows(original_inp, **kwargs):  # Captum's sampler replaced: all-ones, all-zeros, ours
        yield torch.ones(1, 9, dtype=torch.long)
        yield torch.zeros(1, 9, dtype=torch.long)
        for r in rows:
            yield torch.as_tensor(r[None]).long()

    cap.perturb_func = same_rows
    ref = cap.attribute(
        torch.as_tensor(x)[None], baselines=torch.as_tensor(b)[None], target=2,
        feature_mask=torch.as_tensor(LABELS)[None, None], n_samples=200, perturbations_per_eval=64,
    ).numpy()[0]
    # Captum fits in float32 (sklearn on float32 arrays, 10⁶ weights): agreement to 1e-5 of the scale.
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_sampling_law_pairs_and_streams():
    m = 10
    ks = KernelSHAP(3, sampling="captum", seed=3)
    z = np.concatenate([ks.coalitions(m, k, 64) for k in range(320)])  # 20 480 rows
    sizes = np.bincount(z.sum(axis=1).astype(int), minlength=m + 1)
    assert sizes[0] == sizes[m] == 0
    k = np.arange(1, m)
    binom = np.array([math.comb(m, int(j)) for j in k])
    p = binom * (m - 1) / (binom * k * (m - k))  # Σ_{|z| = k} π(z), π the Shapley kernel
    p /= p.sum()
    np.testing.assert_allclose(size_distribution(m), p, rtol=1e-12)
    np.testing.assert_allclose(sizes[1:m] / len(z), p, atol=4 * np.sqrt(p.max() / len(z)))  # 4 σ
    for k in (1, 5, 9):  # given its size, a coalition is uniform: every feature in k/M of them
        np.testing.assert_allclose(z[z.sum(axis=1) == k].mean(axis=0), k / m, atol=0.06)
    paired = KernelSHAP(3, sampling="paired", seed=3).coalitions(m, 0, 64)
    np.testing.assert_array_equal(paired[0::2] + paired[1::2], 1.0)
    np.testing.assert_array_equal(ks.coalitions(m, 4, 64), ks.coalitions(m, 4, 64))
    assert not np.array_equal(ks.coalitions(m, 4, 64), ks.coalitions(m, 5, 64))
    assert not np.array_equal(ks.coalitions(m, 4, 64)[:, :9], ks.coalitions(9, 4, 64))


def test_efficiency_exact_and_weighted():
    rng = np.random.default_rng(4)
    model = FunctionModel(smooth_fn(rng), SHAPE, 3)
    x = rng.random(SHAPE).astype(np.float32)
    exact = KernelSHAP(100, segmentation=LABELS, seed=2).explain(model, x, target=0)
    assert abs(exact.completeness_gap) < 1e-6 * abs(exact.score - exact.baseline_score) + 1e-7
    weighted = KernelSHAP(100, segmentation=LABELS, efficiency="captum", seed=2).explain(model, x, target=0)
    assert abs(weighted.completeness_gap) < 1e-3 * abs(weighted.score - weighted.baseline_score)
    assert weighted.params["efficiency"] == "captum" and exact.params["baseline"] == "blur(31,5.0)"


@pytest.mark.parametrize("batch", [False, True])
def test_query_accounting_and_budget_refusal(batch: bool):
    rng = np.random.default_rng(5)
    x = rng.random((2, *SHAPE) if batch else SHAPE).astype(np.float32)
    ks = KernelSHAP(130, segmentation=LABELS)
    model = FunctionModel(smooth_fn(rng), SHAPE, 3)
    exp = ks.explain(model, x, target=0)
    assert exp.n_queries == model.n_queries == (2 if batch else 1) * 130
    short = FunctionModel(smooth_fn(rng), SHAPE, 3, max_queries=exp.n_queries - 1)
    with pytest.raises(QueryBudgetExceeded):
        ks.explain(short, x, target=0)
    assert short.n_queries == 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_same_map_whatever_queries_per_call_and_batch_composition(backend: str):
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    model = FunctionModel(smooth_fn(rng), SHAPE, 3)
    xs = rng.random((3, *SHAPE)).astype(np.float32)
    labels = np.stack([LABELS, grid_segments(12, 12, 2), LABELS])  # M = 9, 4, 9
    ref = KernelSHAP(150, segmentation=labels, array_backend=backend, queries_per_call=64).explain(model, xs, [0, 1, 2])
    assert ref.diagnostics["n_segments"].tolist() == [9, 4, 9]
    for qpc in (1, 1000):
        other = KernelSHAP(150, segmentation=labels, array_backend=backend, queries_per_call=qpc)
        np.testing.assert_array_equal(other.explain(model, xs, [0, 1, 2]).attributions, ref.attributions)
    for i in range(3):
        alone = KernelSHAP(150, segmentation=labels[i], array_backend=backend).explain(model, xs[i], i)
        np.testing.assert_array_equal(alone.attributions, ref.attributions[i])
    if backend == "torch":  # same rows on both backends: the maps agree to float rounding
        host = KernelSHAP(150, segmentation=labels, array_backend="numpy").explain(model, xs, [0, 1, 2])
        np.testing.assert_allclose(ref.attributions, host.attributions, rtol=1e-5, atol=1e-7)


def test_segmentation_defaults_and_refusals():
    grey = FunctionModel(lambda z: np.tile([0.3, 0.7], (len(z), 1)), (1, 28, 28), 2)
    exp = KernelSHAP(10).explain(grey, np.random.default_rng(7).random((1, 28, 28)))
    assert exp.params["segmentation"] == "grid(8x8)" and exp.diagnostics["n_segments"] == 64
    quadrants = np.kron(np.random.default_rng(8).random((3, 2, 2)), np.ones((32, 32))).astype(np.float32)
    colour = FunctionModel(lambda z: np.tile([0.3, 0.7], (len(z), 1)), (3, 64, 64), 2)
    assert KernelSHAP(10).explain(colour, quadrants).params["segmentation"] == "slic(n_segments=64)"
    flat = np.full((3, 64, 64), 0.5, np.float32)  # SLIC finds one superpixel: "auto" takes the grid
    assert KernelSHAP(10).explain(colour, flat).diagnostics["n_segments"] == 64
    with pytest.raises(InvalidInputError, match="at least 2 segments"):
        KernelSHAP(10, segmentation=np.zeros((28, 28), np.int64)).explain(grey, np.zeros((1, 28, 28)))
    assert grey.n_queries == 10
    assert get_method("kernelshap") is KernelSHAP


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 2}, "n_samples"),
        ({"segmentation": "watershed"}, "segmentation"),
        ({"n_segments": 1}, "n_segments"),
        ({"sampling": "antithetic"}, "sampling"),
        ({"efficiency": "soft"}, "efficiency"),
        ({"paint": "mean"}, "paint"),
        ({"baseline": None}, "baseline"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        KernelSHAP(**kwargs)
