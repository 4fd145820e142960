"""The queries GEEX and GE actually send, read back from a spying model: where on the path each
query sits (α recovered by projection), one α per stratum, mirrored pairs exactly centre ± δ.

These look only at the queries, not at the estimate, so they hold whatever the model is.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import GE, GEEX

from .conftest import SpyModel, tanh_scores

SHAPE = (1, 16, 16)
RNG = np.random.default_rng(11)
X = RNG.uniform(0.5, 1.0, SHAPE).astype(np.float32)
B = RNG.uniform(0.0, 0.3, SHAPE).astype(np.float32)


def perturbed(model: SpyModel, *known: np.ndarray) -> np.ndarray:
    """The queries sent, as (n, D) float64 rows, without the one query on each of ``known``."""
    rows = model.sent.reshape(len(model.sent), -1).astype(np.float64)
    keep = np.ones(len(rows), bool)
    for k in known:
        hits = np.flatnonzero(np.all(rows == k.ravel(), axis=1) & keep)
        assert len(hits) >= 1, "the explicand / baseline query is missing"
        keep[hits[0]] = False
    return rows[keep]


def path_position(rows: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """α of the point of the line start + α(end − start) closest to each row."""
    step = (end - start).ravel().astype(np.float64)
    return (rows - start.ravel()) @ step / (step @ step)


def mirror_pairs(rows: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Index of each query's mirror partner: the one whose offset across the path cancels it."""
    step = (end - start).ravel().astype(np.float64)
    across = rows - start.ravel()
    across -= np.outer(across @ step / (step @ step), step)
    sq = (across**2).sum(1)
    cost = sq[:, None] + sq[None] + 2 * across @ across.T  # ‖a_i + a_j‖²
    np.fill_diagonal(cost, np.inf)
    return cost.argmin(axis=1)


def check_strata(alpha: np.ndarray) -> None:
    """One α in each of the K equal strata of [0, 1]."""
    k = len(alpha)
    np.testing.assert_array_equal(np.sort(np.floor(alpha * k)).astype(int), np.arange(k))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("baseline", ["zero", "array"])
def test_mirrored_pairs_share_a_centre_on_the_path_one_per_stratum(backend: str, baseline: str) -> None:
    x_hat = np.zeros(SHAPE, np.float32) if baseline == "zero" else B
    model = SpyModel(tanh_scores(SHAPE), SHAPE)
    GEEX(257, sigma=0.1, baseline=x_hat, array_backend=backend, queries_per_call=100).explain(model, X, target=0)
    rows = perturbed(model, X, x_hat)
    assert len(rows) == 256
    partner = mirror_pairs(rows, x_hat, X)
    np.testing.assert_array_equal(partner[partner], np.arange(256))  # a perfect pairing
    assert not np.any(partner == np.arange(256))
    first = np.flatnonzero(np.arange(256) < partner)
    centre = (rows[first] + rows[partner[first]]) / 2
    delta = (rows[first] - rows[partner[first]]) / 2
    alpha = path_position(centre, x_hat, X)
    on_path = x_hat.ravel() + np.outer(alpha, (X - x_hat).ravel())
    assert np.abs(centre - on_path).max() < 1e-6  # z± = x̂ + α(x − x̂) ± δ to float32 rounding
    assert abs(delta.std() - 0.1) < 0.01  # the noise is there, with std σ
    check_strata(alpha)
    assert alpha.min() < 1 / 128 and alpha.max() > 127 / 128  # the whole path, both ends


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("baseline", ["zero", "array"])
def test_unpaired_queries_walk_the_whole_path_one_per_stratum(backend: str, baseline: str) -> None:
    # σ = 1e-6 leaves the projection α̂ = α + O(σ/‖x − x̂‖) ≈ α ± 1e-7, far inside a 1/255 stratum.
    x_hat = np.zeros(SHAPE, np.float32) if baseline == "zero" else B
    model = SpyModel(tanh_scores(SHAPE), SHAPE)
    GEEX(255, sigma=1e-6, mirror=False, baseline=x_hat, array_backend=backend).explain(model, X, target=0)
    rows = perturbed(model, X, x_hat)
    assert len(rows) == 255
    alpha = path_position(rows, x_hat, X)
    check_strata(alpha)
    residual = rows - (x_hat.ravel() + np.outer(alpha, (X - x_hat).ravel()))
    assert 0.8e-6 < residual.std() < 1.2e-6  # each query carries its own noise


def test_uniform_and_reference_alphas() -> None:
    model = SpyModel(tanh_scores(SHAPE), SHAPE)
    GEEX(256, sigma=1e-6, mirror=False, alpha="uniform").explain(model, X, target=0)
    alpha = path_position(perturbed(model, X, np.zeros(SHAPE)), np.zeros(SHAPE), X)
    assert alpha.min() >= -1e-5 and alpha.max() < 1 + 1e-5
    assert np.sort(np.floor(alpha * 256)).astype(int).tolist() != list(range(256))  # iid, not stratified
    from scipy import stats

    assert stats.kstest(alpha, "uniform").pvalue > 1e-3
    ref = SpyModel(tanh_scores(SHAPE), SHAPE)
    GEEX(256, alpha="reference").explain(ref, X, target=0)
    rows = perturbed(ref, X, np.zeros(SHAPE))
    partner = mirror_pairs(rows, np.zeros(SHAPE), X)
    first = np.flatnonzero(np.arange(256) < partner)
    alpha = path_position((rows[first] + rows[partner[first]]) / 2, np.zeros(SHAPE), X)
    # the reference code's α_k = k/(n* − 1) over pair numbers k < n*/2: only [0, ½)
    np.testing.assert_allclose(np.sort(alpha), np.arange(128) / 255, atol=1e-6)


@pytest.mark.parametrize("mirror", [True, False])
def test_ge_queries_are_centred_on_x(mirror: bool) -> None:
    model = SpyModel(tanh_scores(SHAPE), SHAPE)
    GE(128, sigma=0.1, mirror=mirror).explain(model, X, target=0)
    rows = perturbed(model, X)
    assert len(rows) == 128
    offsets = rows - X.ravel()
    assert abs(offsets.std() - 0.1) < 0.01
    if mirror:
        partner = mirror_pairs(rows, np.zeros(SHAPE), X)
        np.testing.assert_array_equal(partner[partner], np.arange(128))
        assert np.abs(offsets + offsets[partner]).max() < 1e-6  # x + δ and x − δ
    else:
        assert np.abs(offsets.mean(axis=1)).max() < 0.05  # no shared shift (σ/√D = 0.006)
