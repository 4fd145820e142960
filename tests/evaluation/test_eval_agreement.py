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
