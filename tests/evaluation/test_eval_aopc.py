"""GEEX-style normalised AOPC: hand-derived curves, both aggregations, replacements, ORT/torch parity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError
from onnxplain.evaluation import aopc_deletion, random_order_reference
from onnxplain.explanation import Explanation
from onnxplain.filters import blur
from onnxplain.models.base import FunctionModel


def test_uniform_image_sum_model_gives_one_half(recording_model):
    # f = Σ z on x ≡ 1 with zero replacement: F_k = (n − k)/n, AOPC = (1/(n+1)) Σ_k k/n = 1/2
    model, _ = recording_model((1, 4, 5))
    x = np.ones((1, 4, 5), np.float32)
    res = aopc_deletion(model, x, np.random.default_rng(0).normal(size=(1, 4, 5)), target=0)
    np.testing.assert_allclose(res.curve, np.arange(20, -1, -1), rtol=0, atol=1e-6)
    assert res.score == pytest.approx(0.5, abs=1e-12)
    np.testing.assert_allclose(res.x_axis, np.arange(21) / 20)
    assert res.higher_is_better


def test_both_aggregations_by_hand(recording_model):
    # A = [1,1,1,1] → curve 4,3,2,1,0 ; B = [8,0,0,0] (pixel 0 ranked first) → curve 8,0,0,0,0
    model, _ = recording_model((1, 2, 2))
    x = np.array([[1, 1, 1, 1], [8, 0, 0, 0]], np.float32).reshape(2, 1, 2, 2)
    a = np.array([[4, 3, 2, 1], [4, 3, 2, 1]], float).reshape(2, 1, 2, 2)
    curves = aopc_deletion(model, x, a, target=0, aggregate="curves")
    images = aopc_deletion(model, x, a, target=0, aggregate="images")
    np.testing.assert_allclose(curves.curves, [[4, 3, 2, 1, 0], [8, 0, 0, 0, 0]])
    assert curves.score == pytest.approx(0.7, abs=1e-12)  # ratio of means: mean(1 − [6,1.5,1,.5,0]/6)
    assert images.score == pytest.approx(0.65, abs=1e-12)  # mean of per-image AOPCs (0.5, 0.8)
    np.testing.assert_allclose(curves.per_image, [0.5, 0.8])


def test_stride_and_fraction_set_the_points(recording_model):
    model, _ = recording_model((1, 28, 28))
    x = np.random.default_rng(0).uniform(0.1, 1, size=(2, 1, 28, 28)).astype(np.float32)
    res = aopc_deletion(model, x, x, stride=10, target=0)
    assert len(res.curve) == 80  # the reference's MNIST run: L = ⌈784/10⌉ = 79
    half = aopc_deletion(model, x, x, stride=10, fraction=0.5, target=0)
    assert len(half.curve) == math.ceil(392 / 10) + 1
    assert res.n_queries == model.n_queries - half.n_queries == 2 * 80


def test_signed_ranking_and_stable_ties(recording_model):
    model, rec = recording_model((1, 1, 5))
    x = np.arange(1, 6, dtype=np.float32).reshape(1, 1, 5)
    a = np.array([-3.0, 1.0, 1.0, 5.0, 0.0]).reshape(1, 1, 5)  # order: 3, 1, 2 (tie → index), 4, 0
    aopc_deletion(model, x, a, target=0)
    deleted = [np.flatnonzero(img.ravel() == 0) for img in rec.images]
    order = [int(np.setdiff1d(deleted[k + 1], deleted[k])[0]) for k in range(5)]
    assert order == [3, 1, 2, 4, 0]


def test_replacements(recording_model):
    shape = (2, 28, 28)
    x = np.random.default_rng(1).uniform(0.2, 1, size=(3, *shape)).astype(np.float32)
    a = np.random.default_rng(2).normal(size=(3, *shape))
    model, rec = recording_model(shape)
    n_points = 785

    aopc_deletion(model, x, a, target=0, replacement="baseline", baseline=(0.1, -0.2))
    last = rec.images.reshape(3, n_points, *shape)[:, -1]
    np.testing.assert_array_equal(last[:, 0], 0.1 * np.ones((3, 28, 28), np.float32))
    np.testing.assert_array_equal(last[:, 1], np.float32(-0.2) * np.ones((3, 28, 28), np.float32))

    rec.batches.clear()
    aopc_deletion(model, x, a, target=0, replacement="blur")
    np.testing.assert_array_equal(rec.images.reshape(3, n_points, *shape)[:, -1], blur(x, 31, 5.0))

    rec.batches.clear()
    r1 = aopc_deletion(model, x, a, target=0, replacement="gaussian", baseline=0.13, noise_std=0.3, seed=4)
    noise = rec.images.reshape(3, n_points, *shape)[:, -1]
    assert noise.mean() == pytest.approx(0.13, abs=0.01) and noise.std() == pytest.approx(0.3, rel=0.03)
    assert not np.allclose(noise[0], noise[1])  # one draw per explicand
    r2 = aopc_deletion(model, x, a, target=0, replacement="gaussian", baseline=0.13, noise_std=0.3, seed=4)
    r3 = aopc_deletion(model, x, a, target=0, replacement="gaussian", baseline=0.13, noise_std=0.3, seed=5)
    np.testing.assert_array_equal(r1.curves, r2.curves)
    assert not np.array_equal(r1.curves, r3.curves)
    assert r1.params["seed"] == 4

    rec.batches.clear()
    arr = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    aopc_deletion(model, x, a, target=0, replacement=arr)
    np.testing.assert_array_equal(rec.images.reshape(3, n_points, *shape)[:, -1], np.broadcast_to(arr, x.shape))


def test_blur_matches_torchvision():
    torch = pytest.importorskip("torch")
    from torchvision.transforms.functional import gaussian_blur

    x = np.random.default_rng(0).uniform(size=(2, 3, 28, 30)).astype(np.float32)
    ref = gaussian_blur(torch.from_numpy(x), [31, 31], [5.0, 5.0]).numpy()
    np.testing.assert_allclose(blur(x, 31, 5.0), ref, atol=2e-6)


def test_attribution_ranking_beats_random(linear_softmax):
    model, w, x = linear_softmax
    targets = model(x).argmax(axis=1)
    a = w[targets].reshape(x.shape) * x
    for replacement in ("baseline", "gaussian"):
        good = aopc_deletion(model, x, a, target=targets, replacement=replacement, noise_std=0.3)
        rand = random_order_reference(
            "aopc_deletion", model, x, target=targets, replacement=replacement, noise_std=0.3
        )
        assert good.score > rand.score + 0.05
        assert rand.params["ranking"] == "uniformly random order"


def test_queries_batched_and_counted(linear_softmax):
    model, _, x = linear_softmax
    a = np.random.default_rng(0).normal(size=x.shape)
    model.reset_counters()
    res = aopc_deletion(model, x, a, stride=3, batch_size=50)
    n_points = math.ceil(64 / 3) + 1
    assert res.n_queries == model.n_queries == len(x) * n_points + len(x)
    assert model.n_calls == 1 + math.ceil(len(x) * n_points / 50)
    model.reset_counters()
    res = aopc_deletion(model, x, a, stride=3, batch_size=50, target=0)
    assert res.n_queries == model.n_queries == len(x) * n_points


def test_explanation_input_uses_its_target(linear_softmax):
    model, _, x = linear_softmax
    a = np.random.default_rng(0).normal(size=x.shape)
    exp = Explanation(attributions=a, method="t", target=np.arange(6) % 5, score=np.zeros(6))
    r1 = aopc_deletion(model, x, exp, stride=4)
    r2 = aopc_deletion(model, x, a, stride=4, target=np.arange(6) % 5)
    np.testing.assert_array_equal(r1.curves, r2.curves)


def _tiny_pair():
    """The same 36→5 linear classifier as an ONNX graph (onnx.helper) and as a torch module."""
    onnx = pytest.importorskip("onnx")
    torch = pytest.importorskip("torch")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w = rng.normal(0, 0.5, size=(5, 36)).astype(np.float32)
    b = rng.normal(0, 0.1, size=5).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "W", "b"], ["logits"], transB=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 6, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(proto)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 5))
    with torch.no_grad():
        module[1].weight.copy_(torch.from_numpy(w))
        module[1].bias.copy_(torch.from_numpy(b))
    return proto.SerializeToString(), module


def test_aopc_parity_onnx_vs_torch():
    from onnxplain.models.onnx import OnnxModel
    from onnxplain.models.torch import TorchModel

    data, module = _tiny_pair()
    ort_model = OnnxModel(data, output="probs", device="cpu", batch_size=32)
    torch_model = TorchModel(module, input_shape=(1, 6, 6), output="probs", batch_size=32)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 1, 6, 6)).astype(np.float32)
    a = rng.normal(size=(4, 1, 6, 6))
    for kwargs in ({"replacement": "baseline", "baseline": 0.13}, {"replacement": "gaussian", "seed": 3}):
        r_ort = aopc_deletion(ort_model, x, a, **kwargs)
        r_torch = aopc_deletion(torch_model, x, a, **kwargs)
        np.testing.assert_array_equal(r_ort.params["targets"], r_torch.params["targets"])
        np.testing.assert_allclose(r_ort.curves, r_torch.curves, atol=1e-6)
        assert abs(r_ort.score - r_torch.score) < 1e-6


def test_nonpositive_scores_are_rejected():
    model = FunctionModel(lambda z: -np.ones((len(z), 2)), (1, 3, 3), 2)
    x = np.ones((1, 3, 3), np.float32)
    with pytest.raises(InvalidInputError, match="output='probs'"):
        aopc_deletion(model, x, x)
    with pytest.raises(InvalidInputError, match="output='probs'"):
        aopc_deletion(model, x, x, aggregate="images")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stride": 0}, "stride"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"aggregate": "median"}, "aggregate"),
        ({"replacement": "zeros"}, "replacement"),
        ({"replacement": np.zeros((2, 3))}, "replacement"),
        ({"replacement": "gaussian", "noise_std": 0.0}, "noise_std"),
        ({"replacement": "blur", "blur_size": 4}, "odd"),
        ({"baseline": np.array([np.nan])}, "NaN"),
        ({"reduce": "l2"}, "reduce"),
    ],
)
def test_bad_options(recording_model, kwargs, match):
    model, _ = recording_model((1, 4, 4))
    x = np.ones((1, 4, 4), np.float32)
    with pytest.raises(InvalidInputError, match=match):
        aopc_deletion(model, x, x, target=0, **kwargs)
