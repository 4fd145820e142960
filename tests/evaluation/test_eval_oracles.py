"""Exact-value oracles for the query-only metrics: each recomputed from its paper's definition in a
few lines of plain numpy (a Python loop over curve points, ``sorted`` for the ranking, the seed's
random stream re-drawn), on a non-linear multi-class model, random maps and a batch; the metric
must match to float rounding. Also the full recorded protocol (``params``) and the JSON record.

Tolerance: both sides score the same float32 images with the same model, so curves agree to
1e-12; infidelity re-draws the same stream, so it agrees to 1e-9 relative (summation order).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import ndtri

from onnxplain.evaluation import (
    MetricResult,
    aopc_deletion,
    deletion_auc,
    infidelity,
    insertion_auc,
    random_order_reference,
)
from onnxplain.models.base import FunctionModel, softmax

SHAPE = (3, 5, 6)
RNG = np.random.default_rng(99)
WEIGHTS = RNG.normal(0.0, 0.4, (4, int(np.prod(SHAPE))))
XS = RNG.uniform(0.0, 1.0, (3, *SHAPE)).astype(np.float32)
MAPS = RNG.normal(size=(3, *SHAPE))


def probs(rows: np.ndarray) -> np.ndarray:
    """softmax(W z + (W z)²/4): 4 classes, non-linear in every pixel."""
    logits = rows @ WEIGHTS.T
    return softmax(logits + logits**2 / 4)


def model(**kwargs) -> FunctionModel:
    return FunctionModel(lambda z: probs(np.asarray(z, np.float64).reshape(len(z), -1)), SHAPE, 4, **kwargs)


def f(images: np.ndarray, target: int) -> float:
    return float(probs(np.asarray(images, np.float32).astype(np.float64).reshape(1, -1))[0, target])


def top_classes() -> np.ndarray:
    return probs(XS.astype(np.float64).reshape(3, -1)).argmax(1)


def descending(keys: np.ndarray) -> list[int]:
    """Feature indices by decreasing key, ties by index (Python's stable sort)."""
    return sorted(range(len(keys)), key=lambda i: -keys[i])


# -- GEEX paper's normalised AOPC (§4.3) -----------------------------------------------------------


def aopc_oracle(x, a, values, targets, stride, fraction):
    """F_k = f(x with the top k·stride pixels from ``values``), k = 0..⌈HW·fraction/stride⌉;
    AOPC = mean_k (1 − F̄_k / F̄_0) with F̄ the batch-mean curve; per image mean_k (1 − F_k/F_0)."""
    hw = SHAPE[1] * SHAPE[2]
    steps = int(np.ceil(hw * fraction / stride))
    curves = []
    for xb, ab, vb, t in zip(x, a, values, targets, strict=True):
        order = descending(ab.mean(axis=0).ravel())
        curve = []
        for k in range(steps + 1):
            img = xb.copy().reshape(3, -1)
            for p in order[: min(k * stride, hw)]:
                img[:, p] = vb.reshape(3, -1)[:, p]
            curve.append(f(img.reshape(SHAPE), t))
        curves.append(curve)
    curves = np.array(curves)
    mean = curves.mean(0)
    return curves, float(np.mean(1 - mean / mean[0])), np.mean(1 - curves / curves[:, :1], axis=1)


@pytest.mark.parametrize(("stride", "fraction"), [(1, 1.0), (4, 0.5), (7, 1.0)])
def test_aopc_equals_its_definition(stride, fraction) -> None:
    base = RNG.uniform(0, 1, SHAPE).astype(np.float32)
    targets = top_classes()
    res = aopc_deletion(model(), XS, MAPS, replacement="baseline", baseline=base, stride=stride, fraction=fraction)
    curves, score, per_image = aopc_oracle(XS, MAPS, np.broadcast_to(base, XS.shape), targets, stride, fraction)
    np.testing.assert_allclose(res.curves, curves, rtol=0, atol=1e-12)
    assert res.score == pytest.approx(score, abs=1e-12)
    np.testing.assert_allclose(res.per_image, per_image, rtol=0, atol=1e-12)
    n = len(curves[0])
    np.testing.assert_allclose(res.x_axis, np.minimum(np.arange(n) * stride, 30) / 30)
    np.testing.assert_allclose(res.curve, curves.mean(0))
    assert res.n_queries == 3 * n + 3  # the curve points and one top-class query per explicand
    images = aopc_deletion(model(), XS, MAPS, baseline=base, stride=stride, fraction=fraction, aggregate="images")
    assert images.score == pytest.approx(per_image.mean(), abs=1e-12)
    assert res.params == {
        "replacement": "baseline", "baseline": "array(3, 5, 6)", "noise_std": None, "blur": None,
        "stride": stride, "fraction": fraction, "n_points": n, "reduce": "mean", "aggregate": "curves",
        "ranking": "pixel, descending signed", "seed": 0, "targets": res.params["targets"], "n_images": 3,
    }
    np.testing.assert_array_equal(res.params["targets"], targets)
    assert res.name == "aopc_deletion" and res.higher_is_better


def test_aopc_gaussian_replacement_is_the_seeds_noise() -> None:
    # "gaussian": baseline + noise_std · N(0, 1), one draw per explicand and dimension, from default_rng(seed)
    targets = top_classes()
    res = aopc_deletion(model(), XS, MAPS, replacement="gaussian", baseline=0.5, noise_std=0.3, seed=7, stride=5)
    values = (0.5 + 0.3 * np.random.default_rng(7).standard_normal(XS.shape)).astype(np.float32)
    curves, score, _ = aopc_oracle(XS, MAPS, values, targets, 5, 1.0)
    np.testing.assert_allclose(res.curves, curves, rtol=0, atol=1e-12)
    assert res.score == pytest.approx(score, abs=1e-12)
    assert (res.params["replacement"], res.params["baseline"], res.params["noise_std"], res.params["seed"]) == (
        "gaussian", 0.5, 0.3, 7)
    blurred = aopc_deletion(model(), XS, MAPS, replacement="blur", blur_size=3, blur_sigma=1.0, stride=5)
    assert blurred.params["blur"] == (3, 1.0) and blurred.params["noise_std"] is None


# -- RISE insertion / deletion AUC (§4) ------------------------------------------------------------


def auc_oracle(x, a, substrate, targets, step, insertion, mode):
    """Curve over k = 0..⌈n/step_features⌉ changing the top k·step_features features (pixels in
    all channels, or single dimensions), AUC by the trapezoid rule on x ∈ [0, 1]."""
    curves = []
    for xb, ab, sb, t in zip(x, a, substrate, targets, strict=True):
        full = np.broadcast_to(ab, SHAPE)
        keys = full.mean(0).ravel() if mode == "pixel" else full.ravel()
        per = step * (1 if mode == "pixel" else 3)
        order = descending(keys)
        start, source = (sb, xb) if insertion else (xb, sb)
        steps = -(-len(keys) // per)
        curve = []
        for k in range(steps + 1):
            img = start.copy().reshape((3, -1) if mode == "pixel" else (-1,))
            src = source.reshape(img.shape)
            for p in order[: min(k * per, len(keys))]:
                img[..., p] = src[..., p]
            curve.append(f(img.reshape(SHAPE), t))
        curves.append(curve)
    curves = np.array(curves)
    mean = curves.mean(0)
    return curves, float(np.trapezoid(mean, dx=1 / (len(mean) - 1)))


@pytest.mark.parametrize("insertion", [True, False], ids=["insertion", "deletion"])
@pytest.mark.parametrize(("mode", "step"), [("pixel", 4), ("dimension", 5), ("pixel", None)])
def test_auc_equals_its_definition(insertion, mode, step) -> None:
    metric = insertion_auc if insertion else deletion_auc
    sub = RNG.uniform(0, 1, SHAPE).astype(np.float32)
    maps = MAPS[:, :1] if mode == "dimension" else MAPS  # a one-channel map broadcasts in dimension mode
    targets = np.array([0, 2, 3])
    res = metric(model(), XS, maps, target=targets, step=step, substrate=sub, mode=mode)
    curves, auc = auc_oracle(XS, maps, np.broadcast_to(sub, XS.shape), targets, step or 6, insertion, mode)
    np.testing.assert_allclose(res.curves, curves, rtol=0, atol=1e-12)
    assert res.score == pytest.approx(auc, abs=1e-12)
    np.testing.assert_allclose(res.per_image, [np.trapezoid(c, dx=1 / (len(c) - 1)) for c in curves], atol=1e-12)
    assert res.higher_is_better == insertion and res.name == ("insertion_auc" if insertion else "deletion_auc")
    assert res.n_queries == curves.size  # targets given: no top-class query
    per = (step or 6) * (3 if mode == "dimension" else 1)
    assert res.params == {
        "step": step or 6, "features_per_step": per, "n_points": len(curves[0]), "substrate": "array",
        "blur": None, "mode": mode, "reduce": "mean", "ranking": "descending signed",
        "auc": "trapezoid on the mean curve, x in [0, 1]", "targets": res.params["targets"], "n_images": 3,
    }
    np.testing.assert_array_equal(res.params["targets"], targets)
    n = 30 if mode == "pixel" else 90
    np.testing.assert_allclose(res.x_axis, np.minimum(np.arange(len(curves[0])) * per, n) / n)


def test_auc_blur_substrate_is_recorded() -> None:
    res = insertion_auc(model(), XS, MAPS, substrate="blur", blur_size=3, blur_sigma=1.0)
    assert res.params["substrate"] == "blur" and res.params["blur"] == (3, 1.0)
    assert deletion_auc(model(), XS, MAPS).params["substrate"] == "zero"


def test_random_reference_is_the_metric_on_seeded_uniform_keys() -> None:
    res = random_order_reference("deletion_auc", model(), XS, seed=5, step=3, mode="dimension")
    keys = np.random.default_rng([5, 1]).random((3, 3, *SHAPE[1:]))
    plain = deletion_auc(model(), XS, keys, step=3, mode="dimension")
    np.testing.assert_array_equal(res.curves, plain.curves)
    assert res.name == "deletion_auc[random]"
    targets = res.params.pop("targets")
    np.testing.assert_array_equal(targets, plain.params.pop("targets"))
    assert res.params == {**plain.params, "ranking": "uniformly random order", "order_seed": 5}
    aopc = random_order_reference(aopc_deletion, model(), XS, seed=2, replacement="gaussian", stride=6)
    keys = np.random.default_rng([2, 1]).random((3, 1, *SHAPE[1:]))
    same = aopc_deletion(model(), XS, keys, replacement="gaussian", stride=6, seed=2)
    np.testing.assert_array_equal(aopc.curves, same.curves)  # the seed also seeds the Gaussian values
    assert aopc.name == "aopc_deletion[random]" and aopc.params["seed"] == 2


# -- infidelity (Yeh et al. 2019, Def. 2.1) --------------------------------------------------------


def infidelity_oracle(x, a, targets, n, perturbation, noise_std, fraction, clip, normalize, seed):
    """INFD = mean_i (Δ_i − β s_i)², Δ_i = f(x) − f(x − I_i), s_i = I_iᵀΦ, β = E[Δs]/E[s²] (or 1).
    I_i from default_rng(seed): u ~ U[0,1)^(2, D) per draw; z = Φ⁻¹(u₀); "gaussian": I = σz;
    "subset": the ⌊fraction·D⌉ dimensions with the smallest u₁ become clip(−σz), I = x − that."""
    d = int(np.prod(SHAPE))
    u = np.random.default_rng(seed).random((len(x) * n, 2, d))
    out = []
    for b, (xb, ab, t) in enumerate(zip(x, a, targets, strict=True)):
        xf, phi = xb.astype(np.float64).ravel(), np.broadcast_to(ab, SHAPE).ravel()
        deltas, dots = [], []
        for i in range(n):
            ui = u[b * n + i]
            z = ndtri(np.clip(ui[0], 1e-12, 1 - 1e-12))
            if perturbation == "gaussian":
                pert = noise_std * z
            else:
                chosen = np.argsort(ui[1])[: max(1, round(fraction * d))]
                new = -noise_std * z if clip is None else np.clip(-noise_std * z, *clip)
                pert = np.zeros(d)
                pert[chosen] = xf[chosen] - new[chosen]
            deltas.append(f(xb, t) - f((xf - pert).reshape(SHAPE), t))
            dots.append(pert @ phi)
        deltas, dots = np.array(deltas), np.array(dots)
        beta = (deltas * dots).mean() / (dots**2).mean() if normalize else 1.0
        out.append(((deltas - beta * dots) ** 2).mean())
    return np.array(out)


@pytest.mark.parametrize(
    ("perturbation", "fraction", "clip", "normalize"),
    [("subset", 1 / 3, (0.0, 1.0), True), ("subset", 0.5, None, False), ("gaussian", 1.0, None, True)],
)
def test_infidelity_equals_its_definition(perturbation, fraction, clip, normalize) -> None:
    targets = np.array([1, 0, 3])
    kwargs = {"perturbation": perturbation, "noise_std": 0.3, "subset_fraction": fraction, "clip": clip,
              "normalize": normalize, "seed": 4}
    res = infidelity(model(batch_size=7), XS, MAPS, target=targets, n_perturbations=20, **kwargs)
    oracle = infidelity_oracle(XS, MAPS, targets, 20, perturbation, 0.3, fraction, clip, normalize, 4)
    np.testing.assert_allclose(res.per_image, oracle, rtol=1e-9)
    assert res.score == pytest.approx(oracle.mean(), rel=1e-9)
    assert res.n_queries == 3 + 3 * 20 and not res.higher_is_better and res.name == "infidelity"
    subset = perturbation == "subset"
    expected = {"n_perturbations": 20, "perturbation": perturbation, "noise_std": 0.3,
                "subset_fraction": fraction if subset else None, "clip": clip if subset else None,
                "normalize": normalize, "seed": 4, "n_images": 3}
    assert {k: res.params[k] for k in expected} == expected
    np.testing.assert_array_equal(res.params["targets"], targets)
    if not normalize:
        np.testing.assert_array_equal(res.params["beta"], 1.0)


# -- the result record -----------------------------------------------------------------------------


def test_metric_result_record_is_json_ready() -> None:
    res = aopc_deletion(model(), XS, MAPS, stride=10)
    assert float(res) == res.score
    record = res.to_dict()
    assert set(record) == {"name", "score", "higher_is_better", "params", "n_queries", "curve", "x_axis", "per_image"}
    assert record["name"] == "aopc_deletion" and record["score"] == res.score and record["higher_is_better"] is True
    assert record["n_queries"] == res.n_queries and record["curve"] == res.curve.tolist()
    assert record["x_axis"] == res.x_axis.tolist() and record["per_image"] == res.per_image.tolist()
    assert record["params"]["targets"] == res.params["targets"].tolist()
    assert "curves" not in record
    full = res.to_dict(with_curves=True)
    assert full["curves"] == res.curves.tolist()
    json.dumps(full)
    bare = MetricResult(name="m", score=1, higher_is_better=False).to_dict(with_curves=True)
    assert bare == {"name": "m", "score": 1.0, "higher_is_better": False, "params": {}, "n_queries": 0}


# -- agreement between maps ------------------------------------------------------------------------


@pytest.mark.parametrize(("reduce", "topk_by"), [("mean", "signed"), ("sum", "abs"), ("abs", "signed")])
def test_agreement_equals_its_definitions(reduce, topk_by) -> None:
    """Spearman = Pearson of average ranks (scipy), top-k = |T_k(a) ∩ T_k(b)|/k with T_k the k
    largest (ties by index), cosine = a·b/(‖a‖‖b‖), each per explicand of the reduced maps."""
    from scipy.stats import spearmanr

    from onnxplain.evaluation import agreement

    rng = np.random.default_rng(3)
    a = np.round(rng.normal(size=(3, 2, 6, 5)), 1)  # rounded: ties in the ranks
    b = a + rng.normal(scale=0.8, size=a.shape)
    res = agreement(a, b, reduce=reduce, fractions=(0.1, 0.5), topk_by=topk_by)
    assert list(res) == ["spearman", "top10%", "top50%", "cosine"]
    red = {"mean": lambda m: m.mean(1), "sum": lambda m: m.sum(1), "abs": lambda m: np.abs(m).mean(1)}[reduce]
    ra, rb = red(a).reshape(3, -1), red(b).reshape(3, -1)
    np.testing.assert_allclose(res["spearman"].per_image, [spearmanr(u, v).statistic for u, v in zip(ra, rb, strict=True)],
                               rtol=1e-12)
    for key, k in (("top10%", 3), ("top50%", 15)):
        expected = []
        for u, v in zip(ra, rb, strict=True):
            ku, kv = (np.abs(u), np.abs(v)) if topk_by == "abs" else (u, v)
            expected.append(len(set(descending(ku)[:k]) & set(descending(kv)[:k])) / k)
        np.testing.assert_allclose(res[key].per_image, expected, rtol=0, atol=1e-15)
        assert res[key].params == {"reduce": reduce, "scale": "pixels", "compared_shape": (6, 5), "n_images": 3,
                                   "n_undefined": 0, "k": k, "topk_by": topk_by}
    cos = [u @ v / np.linalg.norm(u) / np.linalg.norm(v) for u, v in zip(ra, rb, strict=True)]
    np.testing.assert_allclose(res["cosine"].per_image, cos, rtol=1e-12)
    for key, r in res.items():
        assert r.name == key and r.higher_is_better and r.score == pytest.approx(np.mean(r.per_image), rel=1e-12)
    assert res["cosine"].params == {"reduce": reduce, "scale": "pixels", "compared_shape": (6, 5), "n_images": 3,
                                    "n_undefined": 0}
    # one map against a batch, either way round: compared with each map of the batch
    one = agreement(a[1], b, reduce=reduce, fractions=(0.1,), topk_by=topk_by)
    other = agreement(b, a[1], reduce=reduce, fractions=(0.1,), topk_by=topk_by)
    np.testing.assert_allclose(one["cosine"].per_image, [red(a[1:2])[0].ravel() @ v / np.linalg.norm(
        red(a[1:2])[0]) / np.linalg.norm(v) for v in rb], rtol=1e-12)
    np.testing.assert_allclose(other["spearman"].per_image, one["spearman"].per_image, rtol=1e-12)


def test_agreement_skips_undefined_explicands_in_the_mean() -> None:
    from onnxplain.evaluation import agreement

    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 1, 4, 4))
    a[1] = 2.0  # constant: no rank correlation; zero: no cosine
    a[2] = 0.0
    b = rng.normal(size=(3, 1, 4, 4))
    res = agreement(a, b)
    assert np.isnan(res["spearman"].per_image[1:]).all() and res["spearman"].params["n_undefined"] == 2
    assert res["spearman"].score == pytest.approx(res["spearman"].per_image[0], rel=1e-12)
    assert np.isnan(res["cosine"].per_image[2]) and res["cosine"].params["n_undefined"] == 1
    assert res["cosine"].score == pytest.approx(np.mean(res["cosine"].per_image[:2]), rel=1e-12)
    none = agreement(np.ones((2, 1, 4, 4)), b[:2])
    assert np.isnan(none["spearman"].score) and none["spearman"].params["n_undefined"] == 2
