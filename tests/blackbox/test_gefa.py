"""GEFA: analytic games, an exact oracle re-drawn from the seed, the reference's estimator, accounting.

Statistical tolerances: φ̂ is a mean over P independent antithetic pairs, so each test computes
the per-pair terms T_n from the same masks (re-drawn through the public mask API) and allows
4 standard errors sd(T)/√P. With stratified α the pairs are not identically distributed and this
i.i.d. standard error over-estimates the true one (stratification only removes variance), so the
bound is conservative; each test also checks that the error bar is small next to the effect it
tests, so that a wrong estimator fails.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from onnxplain.blackbox import GEFA
from onnxplain.blackbox.gefa_masks import count_law
from onnxplain.blackbox.sampling import NumpyOps, TorchOps, block_ranges
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.base import FunctionModel
from onnxplain.registry import get_method

from .conftest import scalar_model

IID = {"baseline": "zero", "smoothing": None, "rank_transform": "none"}


# -- oracles written from the paper's formulas ---------------------------------------------------


def redraw(gefa: GEFA, h: int, w: int, ops=None) -> tuple[np.ndarray, np.ndarray]:
    """Every pair's mask (P, d) float64 and α (P,), re-drawn block by block through the public API."""
    ops = ops or NumpyOps()
    law = gefa.masks(h, w)
    blocks = [law.block(ops, k, lo // 2, (hi - lo) // 2) for k, (lo, hi) in enumerate(block_ranges(gefa.n_perturbations))]
    return np.concatenate([ops.to_numpy(b.masks) for b in blocks]).astype(np.float64), np.concatenate([b.alpha for b in blocks])


def queries(x: np.ndarray, b: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """z(m) = m ⊙ x + (1 − m) ⊙ x̂ with one mask plane for all channels, as (N, C·H·W) rows."""
    c = x.shape[0]
    z = masks[:, None, :] * x.reshape(c, -1) + (1.0 - masks[:, None, :]) * b.reshape(c, -1)
    return z.reshape(len(masks), -1)


def gefa_oracle(fn, x, b, masks, alpha, cv: bool, mu: float = 0.0) -> np.ndarray:
    """φ̂_i = (1/N) Σ_n (y_n − β̂ h_n) w_i(m_n, α_n) + β̂ μ over all N = 2P queries (pairs unrolled)."""
    m = np.concatenate([masks, 1.0 - masks])  # (N, d)
    a = np.concatenate([alpha, 1.0 - alpha])  # (N,)
    y = fn(queries(x, b, m))  # (N,)
    h = m.sum(1) / m.shape[1] - 0.5
    w = (m - a[:, None]) / (a * (1 - a))[:, None]
    beta = np.cov(y, h)[0, 1] / np.var(h, ddof=1) if cv else 0.0
    return ((y - beta * h)[:, None] * w).mean(0) + beta * mu


def pair_terms(fn, x, b, masks, alpha) -> np.ndarray:
    """T_n = (y(m_n) − y(1 − m_n)) · w(m_n, α_n), (P, d): φ̂ (no control variate) = mean(T)/2."""
    y = fn(queries(x, b, masks)) - fn(queries(x, b, 1.0 - masks))
    return y[:, None] * (masks - alpha[:, None]) / (alpha * (1 - alpha))[:, None]


def within(estimate, terms, target, k: float = 4.0) -> np.ndarray:
    """|estimate − target| / (k·se), se = sd(T)/(2√P): all < 1 means within k standard errors."""
    se = terms.std(axis=0) / (2 * np.sqrt(len(terms)))
    return np.abs(np.asarray(estimate) - target) / (k * se)


def linear(shape, seed=0):
    """f = Σ_j c_j · mean_c z_cj: the Shapley value of pixel j is c_j (x̄_j − b̄_j)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=shape[1:]).ravel() + 0.3
    channels = shape[0]

    def fn(rows):
        return rows.reshape(len(rows), channels, -1).mean(1) @ c

    return fn, c


# -- the estimator's expectations ------------------------------------------------------------------


def test_linear_model_is_unbiased_and_complete_with_iid_masks():
    shape = (2, 4, 5)
    fn, c = linear(shape)
    c[3] = c[7]  # two symmetric pixels (same c, same x, below)
    c[11] = 0.0  # a dummy pixel
    rng = np.random.default_rng(1)
    x = rng.random(shape).astype(np.float32)
    x[:, 1, 2] = x[:, 0, 3]  # pixel 7 = pixel 3
    gefa = GEFA(100_000, control_variate=False, **IID)
    exp = gefa.explain(scalar_model(fn, shape), x, target=0)
    phi = exp.saliency("sum").ravel()  # the map is φ̂/C per channel
    truth = c * x.reshape(2, -1).mean(0)
    masks, alpha = redraw(gefa, 4, 5)
    terms = pair_terms(fn, x, np.zeros_like(x), masks, alpha)
    np.testing.assert_allclose(phi, terms.mean(0) / 2, rtol=1e-5, atol=1e-6)  # the same masks
    assert within(phi, terms, truth).max() < 1  # E[φ̂_i] = c_i(x̄_i − b̄_i)
    assert terms.std(0).max() / (2 * np.sqrt(len(terms))) < 0.1 * np.abs(truth).max()
    total = terms.sum(1, keepdims=True)  # Σ_i φ̂_i ≈ f(x) − f(b)
    assert within(exp.attributions.sum(), total, exp.score - exp.baseline_score).item() < 1
    assert within(phi[3] - phi[7], terms[:, [3]] - terms[:, [7]], 0.0).item() < 1  # symmetry
    assert within(phi[11], terms[:, [11]], 0.0).item() < 1  # dummy


@pytest.mark.parametrize(("alpha", "expected", "other"), [("stratified", 1 / 3, 0.3194), ("grid", 0.3194, 1 / 3)])
def test_and_game_stratified_is_shapley_and_the_grid_is_a_quadrature(alpha, expected, other):
    # v(S) = 1 iff S = {1,2,3}: Shapley ⅓ each; an 11-node grid gives mean_k (k/12)² = 0.31944.
    # Per pair T = (y − y′)w has E[T²|α] ≤ 1, so se ≤ 1/(2√P) = 0.0017 at P = 88,000/2 — the
    # two targets are 8 se apart.
    grid = np.arange(1, 12) / 12
    assert np.mean(grid**2) == pytest.approx(0.319444, abs=1e-6)
    model = scalar_model(lambda r: r.prod(axis=1), (1, 1, 3))
    gefa = GEFA(88_000, alpha=alpha, control_variate=False, **IID)
    phi = gefa.explain(model, np.ones((1, 1, 3), np.float32), target=0).attributions.ravel()
    masks, a = redraw(gefa, 1, 3)
    terms = pair_terms(lambda r: r.prod(axis=1), np.ones((1, 1, 3)), np.zeros((1, 1, 3)), masks, a)
    assert within(phi, terms, np.mean(grid**2) if alpha == "grid" else expected).max() < 1
    assert within(phi, terms, other, k=3.0).min() > 1
    rejected = GEFA(2200, alpha=alpha, control_variate=False, reject_extremes=True, **IID)
    exp = rejected.explain(model, np.ones((1, 1, 3), np.float32), target=0)
    np.testing.assert_array_equal(exp.attributions, 0.0)  # the reference's rejection: never a full mask
    assert exp.diagnostics["redrawn_masks"] > 0


def test_control_variate_on_iid_masks_shifts_by_beta_over_d_and_restoring_makes_it_unbiased():
    shape = (1, 16, 16)
    d = 256
    fn, c = linear(shape, seed=2)
    x = np.random.default_rng(3).random(shape).astype(np.float32)
    model = scalar_model(fn, shape)
    runs = {
        key: GEFA(20_000, control_variate=cv, cv_mean=mean, **IID).explain(model, x, target=0)
        for key, cv, mean in [("none", False, "restore"), ("raw", True, "reference"), ("restored", True, "restore")]
    }
    phi = {k: e.attributions.ravel() for k, e in runs.items()}
    beta = runs["raw"].diagnostics["cv_beta"]
    gain = runs["raw"].score - runs["raw"].baseline_score
    assert beta == pytest.approx(gain, rel=0.02)  # β = Cov(y, h)/Var(h) = f(x) − f(b) for a linear f
    # raw vs restored: a constant shift of exactly β̂/d (E[h·w_i | α] = 1/d for i.i.d. masks)
    np.testing.assert_allclose(phi["restored"] - phi["raw"], beta / d, rtol=1e-5)
    assert (np.argsort(phi["raw"]) == np.argsort(phi["restored"])).all()
    # the raw term's realised shift mean_i (1/N) Σ_n β̂ h_n w_i(n) has expectation β̂/d; its
    # per-pair terms 2h(K/d − α)/(α(1 − α)) are heavy-tailed near α → 0, 1, hence the z-test
    masks, alpha = redraw(GEFA(20_000, **IID), 16, 16)
    k = masks.sum(1)
    s_terms = (2 * (k / d - 0.5) * (k / d - alpha) / (alpha * (1 - alpha)))[:, None]
    shift = (phi["none"] - phi["raw"]).mean() / beta
    np.testing.assert_allclose(shift, s_terms.mean() / 2, rtol=1e-4)
    assert within(shift, s_terms, 1 / d).item() < 1
    assert abs(phi["raw"].sum()) < 0.05 * abs(gain)  # mean-centred: completeness lost
    assert runs["restored"].completeness_gap == pytest.approx(0.0, abs=0.05 * abs(gain))
    truth = c * x.ravel()
    oracle = gefa_oracle(fn, x, np.zeros_like(x), masks, alpha, cv=True, mu=1 / d)
    np.testing.assert_allclose(phi["restored"], oracle, rtol=1e-5, atol=1e-6 * np.abs(oracle).max())
    # the control variate cuts the error ≥ 5× here (it removes the α-trend of y)
    assert np.abs(phi["restored"] - truth).max() * 5 < np.abs(phi["none"] - truth).max()


def test_rank_masks_give_a_mean_centred_map_with_or_without_the_control_variate():
    # Exact-size masks: Σ_i w_i = (K − αd)/(α(1−α)) with |K − αd| < 1, so Σφ̂ ≈ 0 whatever the CV.
    # For a linear f, E[φ̂_i | α] = a_i − (A − a_i)/(d−1) + (A − a_i)·Var(K)/(d(d−1)α(1−α))
    # (a_i = c_i x_i, A = Σa, Var K = p(1−p) for K = s + Bernoulli(p)), so E[Σφ̂] = A·E[Var K/(dα(1−α))]
    # (2.5 % of A here) without the CV and 0 with it (β ≈ A and E[Σ_i h·w_i] = E[Var K/(dα(1−α))]).
    # Grid α (the reference's) keeps the weights bounded (α ≥ 1/12).
    shape, d = (1, 8, 8), 64
    fn, c = linear(shape, seed=4)
    x = np.random.default_rng(5).random(shape).astype(np.float32)
    model = scalar_model(fn, shape)
    kw = {"baseline": "zero", "smoothing": None, "rank_transform": "exact", "alpha": "grid"}
    plain = GEFA(44_000, control_variate=False, **kw)
    with_cv = GEFA(44_000, control_variate=True, cv_mean="reference", **kw)
    runs = [g.explain(model, x, target=0) for g in (plain, with_cv)]
    phi, phi_cv = (e.attributions.ravel() for e in runs)
    a = c * x.ravel()
    big_a = a.sum()
    nodes = np.arange(1, 12) / 12
    _, p = count_law(nodes, d, "exact")
    var_term = np.mean(p * (1 - p) / (nodes * (1 - nodes))) / d  # E[Var K/(dα(1−α))]
    expected = a - (big_a - a) / (d - 1) + (big_a - a) * var_term / (d - 1)
    masks, alpha = redraw(plain, 8, 8)
    terms = pair_terms(fn, x, np.zeros_like(x), masks, alpha)
    assert within(phi, terms, expected).max() < 1
    assert within(phi.sum(), terms.sum(1, keepdims=True), big_a * var_term).item() < 1
    h = masks.sum(1, keepdims=True) / d - 0.5
    beta = runs[1].diagnostics["cv_beta"]
    cv_terms = terms - 2 * beta * h * (masks - alpha[:, None]) / (alpha * (1 - alpha))[:, None]
    np.testing.assert_allclose(phi_cv, cv_terms.mean(0) / 2, rtol=1e-4, atol=1e-6)
    assert within(phi_cv.sum(), cv_terms.sum(1, keepdims=True), 0.0).item() < 1
    assert abs(phi.sum() - phi_cv.sum()) < 0.05 * abs(big_a)  # both ≈ 0, ≠ A: no completeness


# -- exact oracle and the reference's estimator ---------------------------------------------------

SHAPE = (2, 6, 7)


def nonlinear(rows: np.ndarray) -> np.ndarray:
    w = np.linspace(-1, 1, rows.shape[1])
    return np.tanh(rows @ w / 4) + 0.5 * rows[:, :5].prod(axis=1)


CONFIGS = {
    "default": {"smoothing": (3, 1.0), "reject_extremes": True},
    "iid": {"smoothing": None, "rank_transform": "none", "cv_mean": "reference"},
    "grid": {"smoothing": (5, 2.0), "rank_transform": "reference", "alpha": "grid", "grid_remainder": "random"},
}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_map_equals_the_formula_on_masks_redrawn_from_the_seed(config, backend):
    rng = np.random.default_rng(7)
    x = rng.random(SHAPE).astype(np.float32)
    b = rng.random(SHAPE).astype(np.float32)
    gefa = GEFA(1000, baseline=b, seed=11, array_backend=backend, **CONFIGS[config])
    exp = gefa.explain(scalar_model(nonlinear, SHAPE), x, target=0)
    ops = NumpyOps() if backend == "numpy" else TorchOps("cpu")
    masks, alpha = redraw(gefa, 6, 7, ops)
    law = gefa.masks(6, 7)
    mu = law.control_mean(alpha).mean() if gefa.cv_mean == "restore" else 0.0
    oracle = gefa_oracle(nonlinear, x, b, masks, alpha, cv=True, mu=mu)
    np.testing.assert_allclose(exp.attributions * 2, np.broadcast_to(oracle.reshape(1, 6, 7), SHAPE),
                               atol=1e-6 * np.abs(oracle).max())
    assert exp.n_queries == 1002 and exp.params["n_pairs"] == 500


def reference_estimate(masks: np.ndarray, alpha: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The reference's ``_gradient_estimate`` conventions, re-written in numpy from the notes:
    masks [m; ¬m], paths [α; 1 − α], w = m/α + (m − 1)/(1 − α), h = |m|/d − ½ (its ``h == 1 → 0``
    never fires), β = torch.cov-style (ddof 1) Cov(y, h)/Var(h), map = mean((y − hβ)·w), (1, H, W)."""
    m = np.concatenate([masks, 1.0 - masks]).reshape(-1, 1, *shape)
    paths = np.concatenate([alpha, 1.0 - alpha]).reshape(-1, 1, 1, 1)
    ws = m / paths + (m - 1) / (1 - paths)
    hs = m.sum(axis=(1, 2, 3)) / np.prod(shape) - 0.5
    hs[hs == 1.0] = 0.0
    cov = np.cov(np.stack([y, hs]))
    fitness = y - hs * (cov[0, 1] / cov[1, 1])
    return np.mean(fitness.reshape(-1, 1, 1, 1) * ws, axis=0)


def test_reference_preset_matches_the_reference_estimator_on_the_same_masks():
    rng = np.random.default_rng(8)
    x = rng.random(SHAPE).astype(np.float32)
    gefa = GEFA.preset("reference", n_queries=640, smoothing=(5, 1.0))
    exp = gefa.explain(scalar_model(nonlinear, SHAPE), x, target=0)
    masks, alpha = redraw(gefa, 6, 7)
    y = nonlinear(queries(x, np.zeros_like(x), np.concatenate([masks, 1 - masks])))
    ref = reference_estimate(masks, alpha, y, (6, 7))
    np.testing.assert_allclose(exp.attributions * 2, np.broadcast_to(ref, SHAPE), atol=1e-6 * np.abs(ref).max())
    assert exp.params["alpha"] == "grid" and exp.params["cv_mean"] == "reference"


REFERENCE_ENV = "ONNXPLAIN_GEFA_REFERENCE"


@pytest.mark.skipif(not os.environ.get(REFERENCE_ENV), reason=f"set {REFERENCE_ENV} to a checkout of caiy0220/GEFA")
def test_reference_code_gives_our_map_on_our_masks(monkeypatch):
    # The authors' GEFA4Image, imported from a local checkout, with its masks replaced by ours;
    # its hard-coded .cuda() calls become no-ops (the only change: its code runs on the CPU).
    import torch

    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    monkeypatch.syspath_prepend(str(Path(os.environ[REFERENCE_ENV]).resolve()))
    from gefa.gefa import GEFA4Image  # type: ignore[import-not-found]

    shape = (2, 7, 7)  # square: its unsmoothed padding is (H, H)
    x = np.random.default_rng(9).random(shape).astype(np.float32)
    ours = GEFA.preset("reference", n_queries=640, smoothing=(3, 1.0), seed=2)
    exp = ours.explain(scalar_model(nonlinear, shape), x, target=1)
    masks, alpha = redraw(ours, 7, 7)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))  # it reads the device from a parameter

        def forward(self, z):
            v = torch.from_numpy(nonlinear(z.reshape(len(z), -1).double().numpy()))
            return torch.stack([v, -v], 1)

    theirs = GEFA4Image(640, shape, filter_w=1)
    hits = torch.from_numpy(masks.reshape(-1, 1, 7, 7) > 0.5)
    paths = torch.from_numpy(alpha.reshape(-1, 1, 1, 1)).float()
    theirs.masks, theirs.paths = torch.cat([hits, ~hits]), torch.cat([paths, 1 - paths])
    theirs.mask_weights = theirs._get_mask_weights()
    attr = theirs.explain(Net(), torch.from_numpy(x)[None], target_class=1).numpy()
    np.testing.assert_allclose(exp.attributions[0] * 2, attr[0], atol=1e-5 * np.abs(attr).max())


# -- accounting, determinism, backends --------------------------------------------------------------


def test_accounting_budget_and_batch_size_invariance():
    rng = np.random.default_rng(10)
    model = scalar_model(nonlinear, SHAPE)
    xs = rng.random((2, *SHAPE)).astype(np.float32)
    ref = GEFA(301, smoothing=(3, 1.0), seed=5).explain(model, xs, target=0)
    assert ref.n_queries == model.n_queries == 2 * 302  # 300 masked (odd budget drops one) + f(x) + f(x̂)
    for per_call in (1, 64, 100, 5000):
        other = GEFA(301, smoothing=(3, 1.0), seed=5, queries_per_call=per_call).explain(model, xs, target=0)
        np.testing.assert_array_equal(other.attributions, ref.attributions)
    single = GEFA(301, smoothing=(3, 1.0), seed=5).explain(model, xs[1], target=0)
    np.testing.assert_array_equal(single.attributions, ref.attributions[1])
    assert single.n_queries == 302 and single.params["seed"] == 5
    for backend in ("numpy", "torch"):
        for x in (xs[0], xs):
            gefa = GEFA(300, smoothing=(3, 1.0), array_backend=backend)
            need = gefa.queries_per_explicand(SHAPE) * (len(x) if x.ndim == 4 else 1)
            limited = FunctionModel(lambda z: np.tile([0.5, 0.5], (len(z), 1)), SHAPE, 2, max_queries=need - 1)
            with pytest.raises(QueryBudgetExceeded):
                gefa.explain(limited, x)
            assert limited.n_queries == 0
            exact = FunctionModel(lambda z: np.tile([0.5, 0.5], (len(z), 1)), SHAPE, 2, max_queries=need)
            assert gefa.explain(exact, x).n_queries == exact.n_queries == need
    a = GEFA(300, smoothing=(3, 1.0), array_backend="torch", queries_per_call=64).explain(model, xs, target=0)
    b = GEFA(300, smoothing=(3, 1.0), array_backend="torch", queries_per_call=1000).explain(model, xs[0], target=0)
    np.testing.assert_array_equal(a.attributions[0], b.attributions)


def test_memory_does_not_grow_with_the_budget():
    model = scalar_model(lambda r: np.tanh(r.sum(1) / 100), (3, 24, 24))
    x = np.random.default_rng(0).random((3, 24, 24)).astype(np.float32)
    peaks = []
    for n in (512, 4096):
        tracemalloc.start()
        GEFA(n, queries_per_call=256).explain(model, x, target=0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0]


def test_onnx_and_torch_models_give_the_same_map(demo_models):
    onnx_model, torch_model, digits = demo_models
    gefa = GEFA(256)
    a = gefa.explain(onnx_model, digits[:2]).attributions
    b = gefa.explain(torch_model, digits[:2]).attributions
    np.testing.assert_allclose(a, b, atol=1e-4 * np.abs(a).max())


def test_presets_registry_and_params():
    assert get_method("gefa") is GEFA
    ref = GEFA.preset("reference")
    assert (ref.n_queries, ref.alpha, ref.grid_remainder, ref.rank_transform, ref.cv_mean) == (
        5000, "grid", "random", "reference", "reference")
    assert ref.reject_extremes is True and ref.smoothing == (31, 5.0) and ref.baseline.kind == "zero"
    net = GEFA.preset("imagenet", n_queries=100, seed=3)
    assert net.smoothing == (51, 11.0) and net.baseline.kind == "blur" and net.seed == 3
    default = GEFA()
    assert (default.n_queries, default.alpha, default.rank_transform, default.control_variate) == (
        4000, "stratified", "exact", True)
    assert default.params()["smoothing"] == "auto"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_queries": 1}, "n_queries"),
        ({"smoothing": (4, 1.0)}, "odd"),
        ({"smoothing": "wide"}, "smoothing"),
        ({"smoothing": (3, 1.0), "rank_transform": "none"}, "rank transform"),
        ({"rank_transform": "sorted"}, "rank_transform"),
        ({"alpha": "uniform"}, "alpha"),
        ({"grid_points": 0}, "grid_points"),
        ({"grid_remainder": "drop"}, "grid_remainder"),
        ({"reject_extremes": "yes"}, "reject_extremes"),
        ({"control_variate": 1}, "control_variate"),
        ({"cv_mean": "add"}, "cv_mean"),
        ({"baseline": "noise"}, "baseline"),
        ({"seed": -1}, "seed"),
    ],
)
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        GEFA(**kwargs)
    with pytest.raises(InvalidInputError, match="preset"):
        GEFA.preset("paper")


def test_rejection_needs_two_pixels():
    model = scalar_model(lambda r: r[:, 0], (1, 1, 1))
    with pytest.raises(InvalidInputError, match="2 pixels"):
        GEFA(10, reject_extremes=True, **IID).explain(model, np.ones((1, 1, 1), np.float32))
    assert model.n_queries == 0
