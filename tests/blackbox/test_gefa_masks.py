"""GEFA's masks: the rank transform against the explicit transform, the blurred field against
torchvision's GaussianBlur (the reference's smoother), the α laws, the size-dependent defaults."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import GEFA
from onnxplain.blackbox.gefa_masks import auto_smoothing, count_law, rank_count
from onnxplain.blackbox.sampling import NumpyOps, TorchOps

from .conftest import scalar_model
from .test_gefa import IID


@pytest.mark.parametrize("kind", ["exact", "reference"])
def test_rank_transform_counts_match_the_explicit_transform(kind):
    # Oracle: the whole per-mask transform (rank r ↦ (r + U_r)/d, or the reference's
    # linspace(0, 1, d)[r] + U_r/d), counted below α, with the threshold rank's U equal to v.
    rng = np.random.default_rng(6)
    for d in (1, 2, 3, 7, 64, 1000):
        alpha = rng.random(200)
        v = rng.random(200)
        k = rank_count(alpha, d, v, kind)
        r = np.arange(d)
        u = rng.random((200, d))
        base = r / d if kind == "exact" else (r / (d - 1) if d > 1 else np.zeros(1))
        u_rank = base + u / d
        # put v at the threshold rank: the only one whose U decides the count
        for n in range(200):
            s, _ = count_law(alpha[n : n + 1], d, kind)
            if s[0] < d:
                u_rank[n, int(s[0])] = base[int(s[0])] + v[n] / d
        np.testing.assert_array_equal(k, (u_rank < alpha[:, None]).sum(1))
        if kind == "exact":  # |K − αd| < 1, so K = round(αd) ± 1, and E[K] = s + p = αd
            assert (np.abs(k - alpha * d) < 1).all() and (np.abs(k - np.round(alpha * d)) <= 1).all()
            np.testing.assert_allclose(np.add(*count_law(alpha, d, kind)), alpha * d, atol=1e-9)
        else:  # the reference's ranks r/(d−1) + U/d: |K − α(d−1)| < 1, so K can be round(αd) − 2
            assert (np.abs(k - alpha * (d - 1)) <= 1).all()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_masks_are_the_k_lowest_pixels_of_the_blurred_noise(backend):
    import torch
    from torchvision.transforms import GaussianBlur

    ops = NumpyOps() if backend == "numpy" else TorchOps("cpu")
    h, w, size, sigma = 9, 11, 5, 1.5
    gefa = GEFA(128, smoothing=(size, sigma), reject_extremes=False, rank_transform="reference")
    law = gefa.masks(h, w)
    block = law.block(ops, 1, 32, 32)
    # Re-draw in the documented order: 32 α uniforms, 32 rank uniforms, then the noise fields.
    rng = ops.rng(gefa.seed, "gefa", 1)
    u = ops.uniform(rng, 32)
    v = ops.uniform(rng, 32)
    noise = ops.to_numpy(ops.random(rng, (32, h + size - 1, w + size - 1)))
    # torchvision's GaussianBlur (the reference's smoother), cropped to the valid part
    blurred = GaussianBlur(size, sigma)(torch.from_numpy(noise)[:, None])[:, 0].numpy()
    half = size // 2
    field = blurred[:, half:-half, half:-half].reshape(32, -1)
    np.testing.assert_allclose(block.alpha, law.alphas(u, 32))
    k = rank_count(block.alpha, h * w, v, "reference")
    masks = ops.to_numpy(block.masks)
    np.testing.assert_array_equal(masks.sum(1), k)
    np.testing.assert_array_equal(block.sizes, k)
    for n in range(32):
        lowest = np.argsort(field[n], kind="stable")[: k[n]]
        assert set(np.flatnonzero(masks[n])) == set(lowest.tolist())


def test_alpha_laws_and_the_grid_remainder():
    law = GEFA(2 * 25, alpha="grid", grid_points=11, **IID).masks(4, 4)
    np.testing.assert_allclose(law.alphas(np.zeros(25), 0), ((np.arange(25) % 11) + 1) / 12)
    rnd = GEFA(2 * 25, alpha="grid", grid_remainder="random", seed=3, **IID).masks(4, 4)
    tail = rnd.alphas(np.zeros(3), 22) * 12 - 1  # pairs 22-24 are past the two full cycles
    assert len(set(tail.round().tolist())) == 3
    np.testing.assert_allclose(rnd.alphas(np.zeros(22), 0), ((np.arange(22) % 11) + 1) / 12)
    tails = {tuple(GEFA(50, alpha="grid", grid_remainder="random", seed=s, **IID).masks(4, 4).alphas(np.zeros(3), 22))
             for s in range(6)}
    assert len(tails) > 1  # the remainder's nodes come from the seed
    strat = GEFA(2 * 40, **IID).masks(4, 4)
    a = strat.alphas(np.full(40, 0.5), 0)
    np.testing.assert_allclose(a, (np.arange(40) + 0.5) / 40)


def test_auto_settings_resolve_with_the_image_size():
    assert auto_smoothing(299, 299) == (51, pytest.approx(11.0))
    assert auto_smoothing(224, 224) == (39, pytest.approx(11 * 224 / 299))
    assert auto_smoothing(28, 28) == (5, pytest.approx(11 * 28 / 299))
    assert auto_smoothing(8, 8) is None
    model = scalar_model(lambda r: np.tanh(r.sum(1) / 50), (1, 28, 28))
    exp = GEFA(64).explain(model, np.ones((1, 28, 28), np.float32), target=0)
    assert exp.params["smoothing"] == [5, pytest.approx(1.0301, abs=1e-3)]
    assert exp.params["reject_extremes"] is False and exp.params["baseline"].startswith("blur")
    big = scalar_model(lambda r: np.tanh(r.sum(1) / 50), (1, 40, 40))
    assert GEFA(64).explain(big, np.ones((1, 40, 40), np.float32), target=0).params["reject_extremes"] is True
    assert GEFA(64, rank_transform="none").resolve(224, 224)["smoothing"] is None
