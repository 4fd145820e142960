"""GEEX with path noise (``noise="path"``): the estimator recomputed from the seed, the queries
it sends, linear models whose cell attributions are known, and how ``"auto"`` resolves."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import GEEX
from onnxplain.blackbox.path_noise import auto_grid, cell_index, spread
from onnxplain.blackbox.sampling import BLOCK, NumpyOps, TorchOps, path_alphas
from onnxplain.errors import InvalidInputError
from tests.blackbox.conftest import SpyModel, scalar_model, tanh_scores

SHAPE = (3, 12, 12)


def images(b: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 1.0, (b, *SHAPE)).astype(np.float32), rng.uniform(0.0, 0.5, (b, *SHAPE)).astype(np.float32)


def oracle(f, x: np.ndarray, xh: np.ndarray, n: int, sigma: float, grid: int, seed: int, ops=None) -> np.ndarray:
    """The estimator written from its formula, on perturbations re-drawn from the seed:
    S_c = Σ_k (f(z_k⁺) − f(z_k⁻)) η_kc / (K·2σ), z± = x̂ + (α_k ± σ·Uη_k)∘(x − x̂), spread ∝ |x − x̂|."""
    ops = ops or NumpyOps()
    c, h, w = x.shape
    pairs = n // 2
    rows, cols = cell_index(h, grid), cell_index(w, grid)
    total = np.zeros(grid * grid)
    for k, start in enumerate(range(0, n, BLOCK)):
        m = (min(start + BLOCK, n) - start) // 2
        rng = ops.rng(seed, "geex-path", k)
        u = ops.to_numpy(ops.uniform(rng, m))
        eta = ops.to_numpy(ops.normal(rng, (m, grid, grid))).astype(np.float64)
        alpha = path_alphas("stratified", u, np.arange(start // 2, start // 2 + m), pairs).astype(np.float64)
        for j in range(m):
            t = sigma * eta[j][rows][:, cols]
            plus = xh + (alpha[j] + t) * (x - xh)
            minus = xh + (alpha[j] - t) * (x - xh)
            total += (f(plus) - f(minus)) * eta[j].ravel()
    cells = (total / (pairs * 2 * sigma)).reshape(1, grid, grid)
    return spread(cells, (x - xh)[None], grid)[0]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_map_is_the_formula_on_the_seeds_perturbations(backend: str) -> None:
    w = np.random.default_rng(3).normal(size=int(np.prod(SHAPE)))

    def f(z: np.ndarray) -> float:
        return float(np.tanh(z.ravel() @ w / 10))

    x, xh = images(1)
    model = scalar_model(lambda r: np.tanh(r @ w / 10), SHAPE)
    exp = GEEX(300, noise="path", grid=4, sigma=0.3, baseline=xh[0], seed=5, array_backend=backend).explain(
        model, x[0], target=0
    )
    ops = NumpyOps() if backend == "numpy" else TorchOps("cpu")
    expected = oracle(f, x[0].astype(np.float64), xh[0].astype(np.float64), 300, 0.3, 4, 5, ops)
    np.testing.assert_allclose(exp.attributions, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert exp.params["noise"] == "path" and exp.params["grid"] == 4 and exp.params["sigma"] == 0.3


def test_linear_models_give_each_cell_its_contribution() -> None:
    # f = w·z: S_c = Σ_{i∈c} w_i (x_i − x̂_i) exactly in expectation; the estimate's error per cell
    # is about sqrt((‖S‖² + S_c²)/K) with K pairs. 8,000 pairs: tolerance 5 of those.
    x, xh = images(1, seed=1)
    w = np.random.default_rng(2).normal(size=SHAPE)
    model = scalar_model(lambda r: r @ w.ravel(), SHAPE)
    exp = GEEX(16_000, noise="path", grid=3, baseline=xh[0], seed=0).explain(model, x[0], target=0)
    contrib = w * (x[0] - xh[0])
    rows, cols = cell_index(12, 3), cell_index(12, 3)
    truth = np.zeros((3, 3))
    np.add.at(truth, (rows[:, None], cols[None, :]), contrib.sum(axis=0))
    got = np.zeros((3, 3))
    np.add.at(got, (rows[:, None], cols[None, :]), exp.attributions.sum(axis=0))
    se = np.sqrt((np.sum(truth**2) + truth**2) / 8000)
    assert np.all(np.abs(got - truth) < 5 * se), (got, truth)
    assert exp.attributions.sum() == pytest.approx(float(exp.score - exp.baseline_score), abs=5 * se.max() * 3)


def test_pixels_that_do_not_move_get_nothing() -> None:
    x, xh = images(1, seed=4)
    xh[0, :, :6, :] = x[0, :, :6, :]  # the top half equals its baseline: no path to walk there
    model = SpyModel(tanh_scores(SHAPE), SHAPE)
    exp = GEEX(256, noise="path", grid=2, baseline=xh[0]).explain(model, x[0], target=0)
    assert np.all(exp.attributions[:, :6] == 0) and np.any(exp.attributions[:, 6:] != 0)


def test_queries_move_every_pixel_of_a_cell_along_its_own_path_together() -> None:
    x, xh = images(1, seed=6)
    spy = SpyModel(tanh_scores(SHAPE), SHAPE)
    GEEX(128, noise="path", grid=3, baseline=xh[0], sigma=0.2).explain(spy, x[0], target=0)
    queries = spy.sent[2:].astype(np.float64)  # after f(x) and f(x̂)
    t = (queries - xh[0]) / (x[0] - xh[0])  # each pixel's position on its path
    rows, cols = cell_index(12, 3), cell_index(12, 3)
    for cell_r in range(3):
        for cell_c in range(3):
            block = t[:, :, rows == cell_r][:, :, :, cols == cell_c].reshape(len(t), -1)
            assert np.abs(block - block[:, :1]).max() < 1e-3  # one position per cell and query (float32 queries)


def test_mirror_pairs_straddle_a_stratified_path_position() -> None:
    x, xh = images(1, seed=7)
    spy = SpyModel(tanh_scores(SHAPE), SHAPE)
    GEEX(64, noise="path", grid=2, baseline=xh[0]).explain(spy, x[0], target=0)
    t = ((spy.sent[2:].astype(np.float64) - xh[0]) / (x[0] - xh[0]))[:, 0, 0, 0]
    centre = (t[:32] + t[32:]) / 2  # pair k is (query k, query 32 + k) of the block
    assert np.all(np.floor(centre * 32) == np.arange(32))  # α_k in stratum k of [0, 1]


def test_auto_resolves_by_size_and_is_recorded() -> None:
    small = SpyModel(tanh_scores((1, 28, 28)), (1, 28, 28))
    e = GEEX(64).explain(small, np.full((1, 28, 28), 0.5, np.float32), target=0)
    assert (e.params["noise"], e.params["baseline"], e.params["sigma"]) == ("pixel", "zero", 0.1)
    big = SpyModel(tanh_scores((3, 64, 80)), (3, 64, 80))
    photo = np.random.default_rng(0).random((3, 64, 80)).astype(np.float32)
    e = GEEX(64).explain(big, photo, target=0)
    assert (e.params["noise"], e.params["baseline"], e.params["sigma"], e.params["grid"]) == (
        "path", "blur(31,5.0)", 0.25, auto_grid(64, 80))
    assert auto_grid(224, 224) == 14 and auto_grid(260, 260) == 16


def test_path_noise_refuses_pixel_noise_settings() -> None:
    with pytest.raises(InvalidInputError, match="path noise"):
        GEEX(noise="path", smoothing=(5, 0.7))
    with pytest.raises(InvalidInputError, match="grid"):
        GEEX(noise="path", grid=1)


def test_presets_keep_the_papers_settings() -> None:
    mnist = GEEX.preset("paper-mnist", 100)
    assert (mnist.noise, mnist.sigma_setting, mnist.describe_baseline()) == ("pixel", 0.154, 0.1307)
    imagenet = GEEX.preset("paper-imagenet", 100)
    assert imagenet.smoothing == (5, 0.7) and imagenet.describe_baseline() == "blur(31,5.0)"
