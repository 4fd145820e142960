"""Exact-value oracles: each black-box estimator recomputed in a few lines of plain numpy from the
paper's formula, on perturbations re-drawn from the method's seed through the public sampling
API (``NumpyOps().rng(seed, stream, k)`` per block ``k`` of ``block_ranges(n)``, ``.uniform``,
``.normal``, ``.bernoulli``/``.integers``, ``.bernoulli_columns``; ``TorchOps("cpu")`` for the
torch backend, whose streams differ).

Unlike the statistical checks (thousands of queries, tolerances of several standard errors),
these use ~150 queries and must agree to float32 rounding, so an estimator that is off by a
factor 1 + 1/n, skips part of the path, weights a sample wrongly or mixes explicands fails.
The oracles share nothing with the implementation but the random draws: α, smoothing,
variance, queries, kernel and regression are written here from the formulas (with scipy /
scikit-learn / skimage / the ``lime`` package where an independent implementation exists).

Tolerance: the method builds its queries in float32 (x̂ + α·Δx ± δ, each step rounded) and the
oracle in float64 cast once, so the scores differ by ~1e-7 relative; the estimates then agree to
≤ 2e-6 of their largest value (measured ≤ 3e-7). ``TOL`` = 1e-5 of the largest value leaves a
margin while staying 100× below the smallest bias the tests must catch (1/n ≈ 7e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from onnxplain.blackbox import GE, GEEX, LIME, RISE
from onnxplain.blackbox.sampling import NumpyOps, TorchOps, block_ranges

from .conftest import SpyModel

TOL = 1e-5
N = 151  # odd (a mirrored budget drops its last query) and 3 blocks, the last one partial
SHAPE = (3, 8, 8)
RNG = np.random.default_rng(2024)
XS = RNG.uniform(0.1, 1.0, (2, *SHAPE)).astype(np.float32)
BASE = RNG.uniform(0.0, 0.5, SHAPE).astype(np.float32)
W1 = RNG.normal(size=int(np.prod(SHAPE))) / 8
W2 = RNG.normal(size=int(np.prod(SHAPE))) / 8


def f_smooth(rows: np.ndarray) -> np.ndarray:
    """A non-linear score (curved along every direction): tanh(w₁·z) + (w₂·z)²/2, class 1 = −class 0."""
    v = np.tanh(rows @ W1) + 0.5 * (rows @ W2) ** 2
    return np.stack([v, -v], axis=1)


def make_ops(backend: str):
    """The sampling backend the explainer runs with (its streams differ: each has its oracle run)."""
    if backend == "torch":
        pytest.importorskip("torch")
        return TorchOps("cpu")
    return NumpyOps()


def host(a) -> np.ndarray:
    return np.asarray(a.cpu().numpy() if hasattr(a, "cpu") else a, dtype=np.float64)


def assert_close(ours: np.ndarray, oracle: np.ndarray) -> None:
    np.testing.assert_allclose(ours, oracle, rtol=0, atol=TOL * np.abs(oracle).max())


# -- GEEX / GE (Cai & Wunder 2024, Eq. 1 and Eq. 3) -----------------------------------------------


def smoothing_operator(n: int, size: int, sigma: float) -> np.ndarray:
    """(n, n) matrix of correlation with the Frobenius-normalised Gaussian taps, mirror borders."""
    t = np.arange(size) - size // 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    g /= g.sum()
    return ndimage.correlate1d(np.eye(n), g / np.linalg.norm(g), axis=0, mode="mirror")


def gaussian_draws(seed, stream, n, mirror, kind, noise_shape, smoothing, std, backend="numpy"):
    """δ (pairs or queries, C', H, W) float64 and α per pair/query, as the seed's blocks give them."""
    ops = make_ops(backend)
    used = n - n % 2 if mirror else n
    count = used // 2 if mirror else used  # pairs share one α
    deltas, alphas = [], []
    for k, (lo, hi) in enumerate(block_ranges(used)):
        m = (hi - lo) // (2 if mirror else 1)
        rng = ops.rng(seed, stream, k)
        u = host(ops.uniform(rng, m))  # one U[0,1) per pair, drawn before the block's noise
        e = host(ops.normal(rng, (m, *noise_shape)))
        index = lo // (2 if mirror else 1) + np.arange(m)
        alphas.append({"stratified": (index + u) / count, "uniform": u, "reference": index / (2 * count - 1)}[kind])
        deltas.append(e)
    e, alpha = np.concatenate(deltas), np.concatenate(alphas)
    var = np.ones(noise_shape[1:])
    if smoothing is not None:
        ah, aw = (smoothing_operator(s, *smoothing) for s in noise_shape[1:])
        e = ah @ e @ aw.T
        var = np.outer((ah**2).sum(1), (aw**2).sum(1))  # Var of smoothed unit white noise, per pixel
    return std * e, alpha, std**2 * var, used


def gaussian_oracle(f, x, x_hat, target, *, n, sigma, seed, mirror=True, alpha="stratified", smoothing=None,
                    channels="independent", scale="exact", path=True, backend="numpy"):
    """GEEX Eq. 3: ξ = (x − x̂) ∘ (1/n) Σ_i f(x̂ + α_i(x − x̂) + δ_i) δ_i / Var(δ), mirror pairs
    (+δ, −δ) sharing α; GE (``path=False``): η = (1/n) Σ_i f(x + δ_i) δ_i / Var(δ).
    ``scale="reference"``: δ has std σ/2 and the sum is divided by σ³ (reference code, P2)."""
    noise_shape = (1 if channels == "shared" else x.shape[0], *x.shape[1:])
    std = sigma / 2 if scale == "reference" else sigma
    stream = "geex" if path else "ge"
    delta, a, var, used = gaussian_draws(seed, stream, n, mirror, alpha, noise_shape, smoothing, std, backend)
    if scale == "reference":
        var = sigma**3
    centre = x_hat + a[:, None, None, None] * (x - x_hat) if path else np.broadcast_to(x, (len(a), *x.shape))

    def score(z: np.ndarray) -> np.ndarray:
        return f(z.astype(np.float32).astype(np.float64).reshape(len(z), -1))[:, target]

    weights = score(centre + delta) - score(centre - delta) if mirror else score(centre + delta)
    eta = np.tensordot(weights, delta, axes=1) / (used * var)  # (C', H, W)
    return (x - x_hat) * eta if path else np.broadcast_to(eta, x.shape)


GEEX_CASES = [
    pytest.param(mirror, alpha, smoothing, channels, id=f"{'pairs' if mirror else 'single'}-{alpha}-"
                 f"{'smooth' if smoothing else 'white'}-{channels}")
    for mirror in (True, False)
    for alpha in ("stratified", "uniform", "reference")
    for smoothing in (None, (5, 0.7))
    for channels in ("independent", "shared")
]


@pytest.mark.parametrize(("mirror", "alpha", "smoothing", "channels"), GEEX_CASES)
def test_geex_equals_eq3_recomputed_from_the_seed(mirror, alpha, smoothing, channels) -> None:
    kwargs = {"mirror": mirror, "alpha": alpha, "smoothing": smoothing, "noise_channels": channels}
    targets = [0, 1]
    for baseline in (BASE, "zero"):
        exp = GEEX(N, sigma=0.2, baseline=baseline, seed=5, queries_per_call=96, **kwargs).explain(
            SpyModel(f_smooth, SHAPE), XS, target=targets
        )
        x_hat = np.zeros(SHAPE) if isinstance(baseline, str) else BASE.astype(np.float64)
        for i, t in enumerate(targets):
            oracle = gaussian_oracle(f_smooth, XS[i].astype(np.float64), x_hat, t, n=N, sigma=0.2, seed=5,
                                     mirror=mirror, alpha=alpha, smoothing=smoothing, channels=channels)
            assert_close(exp.attributions[i], oracle)


@pytest.mark.parametrize("mirror", [True, False], ids=["pairs", "single"])
@pytest.mark.parametrize("smoothing", [None, (3, 0.8)], ids=["white", "smooth"])
def test_geex_on_the_torch_backend_equals_eq3_from_its_stream(mirror, smoothing) -> None:
    geex = GEEX(N, sigma=0.2, baseline=BASE, mirror=mirror, smoothing=smoothing, seed=2, array_backend="torch")
    exp = geex.explain(SpyModel(f_smooth, SHAPE), XS, target=[1, 0])
    for i, t in enumerate([1, 0]):
        oracle = gaussian_oracle(f_smooth, XS[i].astype(np.float64), BASE.astype(np.float64), t, n=N, sigma=0.2,
                                 seed=2, mirror=mirror, smoothing=smoothing, backend="torch")
        assert_close(exp.attributions[i], oracle)


def test_geex_reference_scale_equals_the_reference_formula() -> None:
    # Reference code (P2): applied noise σ·m, m ~ N(0, I/4), and Σ f·m/σ² = Σ f·δ/σ³.
    exp = GEEX.reference(N, sigma=0.4, seed=3).explain(SpyModel(f_smooth, SHAPE), XS[0], target=0)
    oracle = gaussian_oracle(f_smooth, XS[0].astype(np.float64), np.zeros(SHAPE), 0, n=N, sigma=0.4, seed=3,
                             alpha="reference", channels="shared", scale="reference")
    assert_close(exp.attributions, oracle)


@pytest.mark.parametrize("mirror", [True, False], ids=["pairs", "single"])
@pytest.mark.parametrize("smoothing", [None, (3, 1.0)], ids=["white", "smooth"])
@pytest.mark.parametrize("channels", ["independent", "shared"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_ge_equals_eq1_recomputed_from_the_seed(mirror, smoothing, channels, backend) -> None:
    ge = GE(N, sigma=0.2, mirror=mirror, smoothing=smoothing, noise_channels=channels, seed=9, queries_per_call=64,
            array_backend=backend)
    exp = ge.explain(SpyModel(f_smooth, SHAPE), XS, target=[1, 0])
    for i, t in enumerate([1, 0]):
        oracle = gaussian_oracle(f_smooth, XS[i].astype(np.float64), None, t, n=N, sigma=0.2, seed=9, mirror=mirror,
                                 smoothing=smoothing, channels=channels, path=False, backend=backend)
        assert_close(exp.attributions[i], oracle)
    assert exp.baseline_score is None


# -- RISE (Petsiuk et al. 2018, Eq. 6) ------------------------------------------------------------


def rise_masks(seed: int, n: int, h: int, w: int, s: int, p: float, backend: str = "numpy") -> np.ndarray:
    """The n masks of the seed, (n, H, W): s×s Bernoulli(p) grids and shifts re-drawn per block,
    up-sampled with skimage ``resize(order=1, mode="reflect")`` and cropped at the shift."""
    from skimage.transform import resize

    ops = make_ops(backend)
    ch, cw = -(-h // s), -(-w // s)
    out = []
    for k, (lo, hi) in enumerate(block_ranges(n)):
        m = hi - lo
        rng = ops.rng(seed, "rise", k)
        grids = host(ops.bernoulli(rng, p, (m, s, s)))
        dy, dx = host(ops.integers(rng, ch, m)).astype(int), host(ops.integers(rng, cw, m)).astype(int)
        for i in range(m):
            up = resize(grids[i], ((s + 1) * ch, (s + 1) * cw), order=1, mode="reflect",
                        anti_aliasing=False)
            out.append(up[dy[i] : dy[i] + h, dx[i] : dx[i] + w])
    return np.stack(out)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_rise_equals_eq6_recomputed_from_the_seed(backend: str) -> None:
    # S = Σ_i f(M_i ⊙ x + (1 − M_i) ⊙ x̂) M_i / (N · p), masks from the oracle above.
    shape, n, s, p = (3, 12, 10), 150, 4, 0.4
    rng = np.random.default_rng(1)
    xs = rng.uniform(0.1, 1.0, (2, *shape)).astype(np.float32)
    base = rng.uniform(0.0, 0.3, shape).astype(np.float32)
    w = rng.normal(size=int(np.prod(shape))) / 10

    def f(rows: np.ndarray) -> np.ndarray:
        v = np.tanh(rows @ w) ** 2
        return np.stack([v, 1 - v], axis=1)

    masks = rise_masks(11, n, 12, 10, s, p, backend)[:, None]  # (n, 1, H, W)
    for baseline, x_hat in ((base, base.astype(np.float64)), (0.0, np.zeros(shape))):
        rise = RISE(n, grid=s, p_keep=p, baseline=baseline, seed=11, queries_per_call=100, array_backend=backend)
        exp = rise.explain(
            SpyModel(f, shape), xs, target=[0, 1]
        )
        for i, t in enumerate([0, 1]):
            z = (masks * xs[i] + (1 - masks) * x_hat).astype(np.float32)
            scores = f(z.reshape(n, -1).astype(np.float64))[:, t]
            oracle = np.tensordot(scores, masks, axes=1) / (n * p)  # (1, H, W)
            assert_close(exp.attributions[i], np.broadcast_to(oracle, shape))


# -- LIME (Ribeiro et al. 2016) -------------------------------------------------------------------

LIME_SHAPE = (3, 12, 12)
# 9 segments of unequal sizes, labelled 3..11 (relabelled to 0..8 in sorted order)
LABELS = np.minimum(np.add.outer(np.arange(12) // 5, 3 * (np.arange(12) // 3)), 8) + 3
LW1 = RNG.normal(size=int(np.prod(LIME_SHAPE))) / 6
LW2 = RNG.normal(size=int(np.prod(LIME_SHAPE))) / 6


def f_interacting(rows: np.ndarray) -> np.ndarray:
    """tanh(w₁·z) + (w₂·z)²: as a function of the segment indicators d it has every product
    d_a·d_b (from the square) and higher orders (from tanh): not additive, so the sample
    weighting decides the surrogate."""
    v = np.tanh(rows @ LW1) + (rows @ LW2) ** 2
    return np.stack([v, -v], axis=1)


def lime_samples(seed: int, n: int, k: int, backend: str = "numpy") -> np.ndarray:
    """The (n, K) binary samples of the seed: Bernoulli(½) columns per block, row 0 all on."""
    ops = make_ops(backend)
    d = np.concatenate(
        [host(ops.bernoulli_columns(ops.rng(seed, "lime", b), 0.5, hi - lo, k))
         for b, (lo, hi) in enumerate(block_ranges(n))]
    )
    d[0] = 1.0
    return d


def lime_queries(x: np.ndarray, labels: np.ndarray, d: np.ndarray, hide) -> np.ndarray:
    """Sample d as an image: segment k of x where d_k = 1, else its mean colour (or ``hide``)."""
    ids = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    if hide == "mean":
        fudge = np.stack([np.stack([x[c][ids == s].mean() for s in range(d.shape[1])])[ids] for c in range(len(x))])
    else:
        fudge = np.full(x.shape, hide)
    on = d[:, ids][:, None]  # (n, 1, H, W)
    return on * x + (1 - on) * fudge


def cosine_distance_to_x(d: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances

    return pairwise_distances(d, d[:1], metric="cosine").ravel()


def ridge(d: np.ndarray, y: np.ndarray, distance: np.ndarray, width: float = 0.25):
    """The surrogate: sklearn Ridge(α=1) with intercept, sample_weight π = sqrt(exp(−D²/w²))."""
    from sklearn.linear_model import Ridge

    pi = np.sqrt(np.exp(-(distance**2) / width**2))
    model = Ridge(alpha=1.0, fit_intercept=True).fit(d, y, sample_weight=pi)
    return model.coef_, model.intercept_, model.score(d, y, sample_weight=pi)


@pytest.mark.parametrize(("hide", "backend"), [("mean", "numpy"), (0.25, "numpy"), ("mean", "torch")])
def test_lime_equals_the_weighted_ridge_on_the_seeds_samples(hide, backend) -> None:
    n, k, seed = 150, 9, 4
    xs = np.random.default_rng(5).uniform(0.1, 1.0, (2, *LIME_SHAPE)).astype(np.float32)
    model = SpyModel(f_interacting, LIME_SHAPE)
    lime = LIME(n, segmentation=LABELS, hide=hide, seed=seed, queries_per_call=100, array_backend=backend)
    exp = lime.explain(model, xs, target=[0, 1])
    d = lime_samples(seed, n, k, backend)
    ids = LABELS - 3
    for i, t in enumerate([0, 1]):
        z = lime_queries(xs[i].astype(np.float64), LABELS, d, hide).astype(np.float32)
        y = f_interacting(z.reshape(n, -1).astype(np.float64))[:, t]
        coef, intercept, r2 = ridge(d, y, cosine_distance_to_x(d))
        assert_close(exp.attributions[i], np.broadcast_to(coef[ids], LIME_SHAPE))
        assert exp.diagnostics["intercept"][i] == pytest.approx(intercept, abs=TOL * np.abs(coef).max())
        assert exp.diagnostics["r2"][i] == pytest.approx(r2, abs=1e-6)
    single = SpyModel(f_interacting, LIME_SHAPE)
    LIME(n, segmentation=LABELS, hide=hide, seed=seed, array_backend=backend).explain(single, xs[0], target=0)
    sent = single.sent[1:]  # after the f(x) query: the n samples in order, row 0 = x itself
    expected = lime_queries(xs[0].astype(np.float64), LABELS, d, hide)
    np.testing.assert_allclose(sent, expected, rtol=0, atol=1e-6)


def test_lime_matches_the_lime_package_where_the_kernel_matters() -> None:
    """The lime package's own kernel (LimeImageExplainer, w = 0.25), cosine distances and Ridge
    on our samples and scores, on the non-additive model: equal to 1e-5. A wrong distance fed to
    the kernel changes the surrogate by ≫ the tolerance (checked below), so this test fails for it."""
    from lime.lime_image import LimeImageExplainer

    n, k, seed = 300, 9, 8
    x = np.random.default_rng(6).uniform(0.1, 1.0, LIME_SHAPE).astype(np.float32)
    exp = LIME(n, segmentation=LABELS, seed=seed).explain(SpyModel(f_interacting, LIME_SHAPE), x, target=0)
    d = lime_samples(seed, n, k)
    z = lime_queries(x.astype(np.float64), LABELS, d, "mean").astype(np.float32)
    y = f_interacting(z.reshape(n, -1).astype(np.float64))
    base = LimeImageExplainer(kernel_width=0.25).base
    intercept, weights, score, _ = base.explain_instance_with_data(
        d, y, cosine_distance_to_x(d), 0, k, feature_selection="none"
    )
    coef = np.array([w for _, w in sorted(weights)])
    assert_close(exp.attributions, np.broadcast_to(coef[LABELS - 3], LIME_SHAPE))
    scale = np.abs(coef).max()
    assert exp.diagnostics["intercept"] == pytest.approx(intercept, abs=TOL * scale)
    assert exp.diagnostics["r2"] == pytest.approx(score, abs=1e-6)
    # Teeth: plausible wrong distances (no square root, Euclidean, hidden count, no weighting)
    on = d.sum(1)
    wrong = {
        "1 - n_on/K": 1 - on / k,
        "euclidean": np.sqrt(k - on),
        "hidden share": 1 - np.sqrt((k - on) / k),
        "unweighted": np.zeros(n),
    }
    for name, distance in wrong.items():
        other = ridge(d, y[:, 0], distance)[0]
        assert np.abs(other - coef).max() > 100 * TOL * scale, name
