"""Agreement between maps: Spearman, top-k intersection, cosine."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from onnxplain.errors import InvalidInputError
from onnxplain.evaluation import agreement
from onnxplain.explanation import Explanation

KEYS = ["spearman", "top1%", "top5%", "top10%", "cosine"]


def _maps(b: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(b, 3, 28, 28))


def test_self_negation_and_permutation():
    m = _maps()
    same = agreement(m, m)
    assert list(same) == KEYS
    for key in KEYS:
        assert same[key].score == pytest.approx(1.0, abs=1e-12) and same[key].higher_is_better
    neg = agreement(m, -m)
    assert neg["spearman"].score == pytest.approx(-1.0, abs=1e-12)
    assert neg["cosine"].score == pytest.approx(-1.0, abs=1e-12)
    assert neg["top10%"].score == 0.0  # the 78 highest can't be among the 78 lowest of 784
    rng = np.random.default_rng(1)
    flat = m.mean(axis=1).reshape(4, -1)
    perm = rng.permuted(flat, axis=1).reshape(4, 1, 28, 28)
    shuffled = agreement(m, perm)
    assert np.all(np.abs(shuffled["spearman"].per_image) < 0.12)  # ~3.5 std of 1/√783
    assert abs(shuffled["spearman"].score) < 0.06
    assert abs(shuffled["top10%"].score - 0.1) < 0.06  # chance level of the intersection


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 5, size=(3, 1, 9, 9)).astype(float)  # many ties
    b = a + rng.normal(scale=2.0, size=a.shape)
    res = agreement(a, b)
    expected = [spearmanr(a[i].ravel(), b[i].ravel()).statistic for i in range(3)]
    np.testing.assert_allclose(res["spearman"].per_image, expected, rtol=1e-12)


def test_topk_by_hand():
    a = np.arange(100, dtype=float).reshape(10, 10)  # top 5 %: pixels 95..99
    b = a.copy()
    b.ravel()[[99, 98]] = -1.0  # two of b's top five fall out
    res = agreement(a, b, fractions=(0.05, 0.01))
    assert res["top5%"].score == pytest.approx(3 / 5)
    assert res["top1%"].score == 0.0  # a's top pixel is 99, b's is 97
    assert res["top5%"].params["k"] == 5
    both = agreement(a - 50, -(a - 50), fractions=(0.05,), topk_by="abs")
    assert both["top5%"].score == pytest.approx(1.0)  # the same magnitudes at the extremes


def test_channel_reduction_and_explanations():
    m = _maps(2)
    exp = Explanation(attributions=m.astype(np.float32), method="t", target=np.zeros(2, int), score=np.zeros(2))
    res = agreement(exp, m.mean(axis=1, keepdims=True))
    assert res["spearman"].score == pytest.approx(1.0)
    single = agreement(exp[0], m[0])
    assert single["cosine"].per_image.shape == (1,)
    # one map against a batch is compared with each of its maps
    broad = agreement(m[0].mean(axis=0), m)
    assert broad["spearman"].per_image[0] == pytest.approx(1.0) and broad["spearman"].per_image[1] < 0.2
    absolute = agreement(m, np.abs(m).mean(axis=1, keepdims=True), reduce="abs")
    assert absolute["spearman"].score == pytest.approx(1.0)


def test_undefined_values_are_nan():
    const = np.ones((1, 8, 8))
    res = agreement(const, _maps(1)[:, :1, :8, :8])
    assert np.isnan(res["spearman"].score) and res["spearman"].params["n_undefined"] == 1
    zero = agreement(np.zeros((8, 8)), np.ones((8, 8)))
    assert np.isnan(zero["cosine"].score)


def test_agreement_errors():
    m = _maps(2)
    with pytest.raises(InvalidInputError, match="differ in size"):
        agreement(m, m[..., :27])
    with pytest.raises(InvalidInputError, match="cannot be compared"):
        agreement(m, _maps(3))
    with pytest.raises(InvalidInputError, match="NaN"):
        agreement(m, np.full_like(m, np.nan))
    with pytest.raises(InvalidInputError, match="fractions"):
        agreement(m, m, fractions=(0.0,))
    with pytest.raises(InvalidInputError, match="topk_by"):
        agreement(m, m, topk_by="rank")
    with pytest.raises(InvalidInputError, match="reduce"):
        agreement(m, m, reduce="max")
    with pytest.raises(InvalidInputError, match=r"\(H,W\)"):
        agreement(np.zeros(5), np.zeros(5))


# -- several scales ---------------------------------------------------------------------------------
def test_pooling_is_the_exact_cell_mean():
    """224 → 28 cells: 8×8 block means; 10 → 4 cells: area means, checked by oversampling (each pixel
    repeated 4×, so every cell is exactly 10 sub-pixels) and a plain mean."""
    from onnxplain.evaluation.agreement import pool_maps

    rng = np.random.default_rng(3)
    m = rng.normal(size=(2, 224, 224))
    blocks = m.reshape(2, 28, 8, 28, 8).mean(axis=(2, 4))
    np.testing.assert_allclose(pool_maps(m, 28), blocks, rtol=1e-12, atol=1e-12)
    odd = rng.normal(size=(1, 10, 10))
    fine = np.repeat(np.repeat(odd, 4, axis=1), 4, axis=2)  # (1, 40, 40)
    oracle = fine.reshape(1, 4, 10, 4, 10).mean(axis=(2, 4))
    np.testing.assert_allclose(pool_maps(odd, 4), oracle, rtol=1e-12, atol=1e-12)
    # an axis not longer than the cell count is left as it is
    wide = rng.normal(size=(1, 6, 40))
    pooled = pool_maps(wide, 10)
    assert pooled.shape == (1, 6, 10)
    np.testing.assert_allclose(pooled, wide.reshape(1, 6, 10, 4).mean(axis=3), rtol=1e-12)
    assert pool_maps(wide[:, :, :8], 10).shape == (1, 6, 8)


def test_scales_identical_maps_agree_fully():
    from onnxplain.evaluation import agreement_scales

    m = np.random.default_rng(4).normal(size=(3, 1, 56, 56))
    res = agreement_scales(m, m)
    assert list(res) == ["pixels", "28×28", "14×14"]
    for scale, by_measure in res.items():
        assert list(by_measure) == ["spearman", "top10%"]
        for r in by_measure.values():
            assert r.score == pytest.approx(1.0, abs=1e-12), scale
    assert res["14×14"]["spearman"].params["compared_shape"] == (14, 14)
    assert res["pixels"]["spearman"].params["compared_shape"] == (56, 56)
    # a 28×28 map is compared as it is at "28×28": the same values as at pixels
    small = np.random.default_rng(5).normal(size=(2, 1, 28, 28))
    other = small + np.random.default_rng(6).normal(size=small.shape)
    twice = agreement_scales(small, other)
    np.testing.assert_array_equal(twice["28×28"]["spearman"].per_image, twice["pixels"]["spearman"].per_image)


def test_a_map_and_its_blurred_copy_agree_more_when_pooled():
    """A smooth field plus pixel noise (the noise of a black-box estimate) against its blurred copy:
    the pixel ranks are dominated by the noise the blur removed; 14×14 cells average it away."""
    from onnxplain.evaluation import agreement_scales
    from onnxplain.filters import blur

    rng = np.random.default_rng(7)
    field = blur(rng.normal(size=(4, 1, 224, 224)).astype(np.float32), 61, 20.0)
    field /= field.std(axis=(1, 2, 3), keepdims=True)
    noisy = field + rng.normal(size=field.shape).astype(np.float32)
    smooth = blur(noisy, 9, 3.0)
    res = agreement_scales(noisy, smooth)
    rho = {s: r["spearman"].score for s, r in res.items()}
    top = {s: r["top10%"].score for s, r in res.items()}
    assert rho["14×14"] > rho["28×28"] > rho["pixels"]
    assert rho["14×14"] > 0.95 and rho["pixels"] < 0.8  # 0.999 and 0.69 on these seeds
    assert top["14×14"] > top["pixels"] + 0.2


def test_pooled_spearman_of_independent_noise_is_near_zero():
    """Independent noise maps: at 14×14 (196 cells) ρ has standard deviation ≈ 1/√195 ≈ 0.072 per image;
    the mean over 12 images ≈ 0.021; bounds at about 3.5 (mean) and 4 (per image) standard deviations."""
    from onnxplain.evaluation import agreement_scales

    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(2, 12, 1, 112, 112))
    res = agreement_scales(a, b)
    for scale in ("pixels", "28×28", "14×14"):
        assert abs(res[scale]["spearman"].score) < 0.075, scale
    assert np.all(np.abs(res["14×14"]["spearman"].per_image) < 0.3)
    assert abs(res["14×14"]["top10%"].score - 0.1) < 0.06  # chance level of the intersection


def test_scale_errors():
    from onnxplain.evaluation import agreement_scales
    from onnxplain.evaluation.agreement import pool_maps

    m = _maps(1)
    with pytest.raises(InvalidInputError, match="unknown agreement measure"):
        agreement_scales(m, m, measures=("kendall",))
    with pytest.raises(InvalidInputError, match="pooled size"):
        pool_maps(np.zeros((1, 4, 4)), 0)
