"""Shared behaviour of the white-box methods: inputs, targets, outputs, counts, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onnxplain.errors import DeviceUnavailableError, InvalidInputError, NonFiniteOutputError
from onnxplain.explanation import Explanation
from onnxplain.gradients import AGI, LA, AttEXplore, IntegratedGradients, Saliency, SmoothGrad
from onnxplain.registry import WHITEBOX, get_method
from tests.gradients.gradient_helpers import FAST, Recorder, images, make_cnn


def test_registry_paths_resolve_to_these_classes() -> None:
    expected = {
        "saliency": Saliency,
        "ig": IntegratedGradients,
        "smoothgrad": SmoothGrad,
        "agi": AGI,
        "attexplore": AttEXplore,
        "la": LA,
    }
    assert set(WHITEBOX) == set(expected)
    for name, cls in expected.items():
        assert get_method(name) is cls
        assert cls.name == name


@pytest.mark.parametrize("name", sorted(FAST))
def test_single_and_batch_shapes_targets_and_records(name: str, cnn: nn.Module) -> None:
    x = images(2)
    method = FAST[name]()
    single = method.explain(cnn, x[0])
    batch = method.explain(cnn, torch.from_numpy(x))
    assert isinstance(single, Explanation) and single.method == name
    assert single.attributions.shape == x.shape[1:] and batch.attributions.shape == x.shape
    assert isinstance(single.target, int) and batch.target.shape == (2,)
    with torch.no_grad():
        logits = cnn(torch.from_numpy(x))
        probs = torch.softmax(logits, 1)
    np.testing.assert_array_equal(batch.target, logits.argmax(1).numpy())
    np.testing.assert_allclose(batch.score, probs.max(1).values.numpy(), rtol=1e-6)
    assert isinstance(single.score, float)
    assert single.params["output"] == "probs" and single.params["device"] == "cpu"
    if name not in ("saliency", "ig"):
        assert "seed" in single.params
    assert single.n_queries > 0 and single.n_backward > 0 and single.seconds > 0
    assert 0 < single.model_seconds <= single.seconds


@pytest.mark.parametrize("name", sorted(FAST))
def test_explicit_and_per_image_targets(name: str, cnn: nn.Module) -> None:
    x = images(2)
    e = FAST[name]().explain(cnn, x, target=[3, 7])
    np.testing.assert_array_equal(e.target, [3, 7])
    with torch.no_grad():
        log_probs = torch.log_softmax(cnn(torch.from_numpy(x)).double(), 1).numpy()
    # compared as log-probabilities: these targets sit near 1e-31 and 1e-39, where a 1e-6
    # relative difference in the logits (channels-last kernels vs the default layout's) is a
    # 1e-5 relative difference in the probability
    np.testing.assert_allclose(np.log(e.score), log_probs[[0, 1], [3, 7]], rtol=1e-6, atol=1e-4)
    assert FAST[name]().explain(cnn, x, target=np.int64(5)).target.tolist() == [5, 5]


def test_logits_output_explains_the_logit(cnn: nn.Module) -> None:
    x = images(1)[0]
    e = Saliency(output="logits").explain(cnn, x, target=2)
    xt = torch.from_numpy(x)[None].requires_grad_(True)
    cnn(xt)[0, 2].backward()
    # channels-last convolutions round differently: agreement to float32 precision of the map's scale
    np.testing.assert_allclose(e.attributions, xt.grad[0].numpy(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert e.score == pytest.approx(float(cnn(torch.from_numpy(x)[None])[0, 2]), rel=1e-5)  # layouts differ by ~1e-6


def test_saliency_is_the_gradient_and_abs_its_magnitude(cnn: nn.Module) -> None:
    x = images(2)
    xt = torch.from_numpy(x).requires_grad_(True)
    probs = torch.softmax(cnn(xt), 1)
    y = probs.argmax(1)
    (g,) = torch.autograd.grad(probs.gather(1, y[:, None]).sum(), xt)
    np.testing.assert_allclose(Saliency().explain(cnn, x).attributions, g.numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(
        Saliency(abs=True).explain(cnn, x).attributions, g.abs().numpy(), rtol=1e-5, atol=1e-8
    )


def test_counts_and_chunking_of_integrated_gradients() -> None:
    rec = Recorder(make_cnn())
    x = images(3)

    def calls(method: IntegratedGradients, target: object = None) -> tuple[list[int], Explanation]:
        rec.inputs.clear()
        e = method.explain(rec, x, target)
        return [len(b) for b in rec.inputs], e

    # target=None: one forward of the 3 explicands, then 3 × 10 path points in chunks ≤ 16 (one
    # explicand each); the trapezoid's end nodes α = 0, 1 give f(x̂) and f(x): no other forward
    sizes, e = calls(IntegratedGradients(steps=10, batch_size=16))
    assert sizes == [3, 10, 10, 10] and e.n_queries == 33 and e.n_backward == 30
    sizes, e = calls(IntegratedGradients(steps=10, batch_size=16), target=[1, 2, 3])
    assert sizes == [10, 10, 10] and e.n_queries == 30
    # whole explicands per chunk when they fit; without end nodes f(x) and f(x̂) cost forwards
    # without gradients, and the batch's shared zero baseline is forwarded once
    sizes, e = calls(IntegratedGradients(steps=5, rule="gausslegendre", batch_size=16), target=0)
    assert sizes == [15, 3, 1] and e.n_queries == 19 and e.n_backward == 15
    sizes, e = calls(IntegratedGradients(steps=5, rule="riemann_right", batch_size=16))
    assert sizes == [3, 15, 1]
    sizes, e = calls(IntegratedGradients(steps=5, rule="riemann_right", baseline="blur", batch_size=16))
    assert sizes == [3, 15, 3]  # one blurred baseline per explicand
    with torch.no_grad():
        p = torch.softmax(make_cnn()(torch.from_numpy(x)), 1)
        p0 = torch.softmax(make_cnn()(torch.zeros(1, 3, 16, 16)), 1)[0]
    for rule in ("trapezoid", "riemann_right", "gausslegendre"):
        for target in (None, [4, 5, 6]):
            _, e = calls(IntegratedGradients(steps=4, rule=rule, batch_size=7), target)
            np.testing.assert_allclose(e.score, p[[0, 1, 2], e.target].numpy(), rtol=1e-5)
            np.testing.assert_allclose(e.baseline_score, p0[e.target].numpy(), rtol=1e-5)


def test_counts_of_smoothgrad_and_saliency(cnn: nn.Module) -> None:
    x = images(2)
    e = SmoothGrad(samples=7, batch_size=4).explain(cnn, x)
    assert e.n_queries == 2 + 14 and e.n_backward == 14
    e = SmoothGrad(samples=7, batch_size=4).explain(cnn, x, target=[0, 1])
    assert e.n_queries == 2 + 14 and e.n_backward == 14  # f(x) from a forward without gradients
    with torch.no_grad():
        p = torch.softmax(cnn(torch.from_numpy(x)), 1)
    np.testing.assert_allclose(e.score, p[[0, 1], [0, 1]].numpy(), rtol=1e-5)
    e = Saliency().explain(cnn, x)
    assert e.n_queries == 4 and e.n_backward == 2
    e = Saliency().explain(cnn, x, target=3)
    assert e.n_queries == 2 and e.n_backward == 2
    np.testing.assert_allclose(e.score, p[:, 3].numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", ["saliency", "ig", "smoothgrad"])
def test_batch_invariance_of_the_classic_methods(name: str, cnn64: nn.Module) -> None:
    x = images(4, dtype=np.float64)
    batch = FAST[name](batch_size=5).explain(cnn64, x)
    alone = FAST[name](batch_size=5).explain(cnn64, x[2])
    np.testing.assert_allclose(alone.attributions, batch.attributions[2], rtol=1e-9, atol=1e-15)


def test_float64_input_to_a_float32_model_is_computed_in_float32(cnn: nn.Module) -> None:
    e = Saliency().explain(cnn, images(1, dtype=np.float64)[0])
    assert e.attributions.dtype == np.float32 and e.params["dtype"] == "float32"


# -- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((16, 16), np.float32), "one image"),
        (np.zeros((1, 1, 3, 16, 16), np.float32), "one image"),
        (np.zeros((0, 3, 16, 16), np.float32), "empty"),
        (np.full((3, 16, 16), np.nan, np.float32), "NaN"),
        (np.array([["a"]]), "floating-point"),
        ([[0.0, 1.0], [2.0]], "floating-point"),
    ],
)
def test_bad_explicands_are_rejected(x: np.ndarray, message: str, cnn: nn.Module) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Saliency().explain(cnn, x)


@pytest.mark.parametrize(
    "target, message",
    [
        (10, "out of range"),
        (-1, "out of range"),
        ([1, 2, 3], "sequence of 2"),
        (1.5, "integer"),
        ("a", "integer"),
    ],
)
def test_bad_targets_are_rejected(target: object, message: str, cnn: nn.Module) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Saliency().explain(cnn, images(2), target=target)


def test_bad_models_and_devices_are_rejected(cnn: nn.Module) -> None:
    x = images(1)[0]
    with pytest.raises(InvalidInputError, match="torch.nn.Module"):
        Saliency().explain(lambda t: t, x)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"\(N, num_classes\)"):
        Saliency().explain(nn.Identity(), x)
    with pytest.raises(InvalidInputError, match="device"):
        Saliency(device="gpu-please").explain(cnn, x)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="CUDA"):
            Saliency(device="cuda").explain(cnn, x)


def test_non_finite_gradients_are_reported() -> None:
    class Sqrt(nn.Module):  # finite scores, infinite gradient at x = 0
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sqrt(x.flatten(1)[:, :3])

    with pytest.raises(NonFiniteOutputError, match="gradients"):
        Saliency(output="logits").explain(Sqrt(), images(1)[0], target=0)


def test_non_finite_model_scores_are_reported() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0], 3), float("nan")) + x.flatten(1)[:, :3]

    with pytest.raises(NonFiniteOutputError):
        Saliency().explain(Broken(), images(1)[0])


@pytest.mark.parametrize(
    "make",
    [
        lambda: Saliency(output="prob"),
        lambda: Saliency(batch_size=0),
        lambda: IntegratedGradients(steps=1),
        lambda: IntegratedGradients(rule="simpson"),
        lambda: IntegratedGradients(baseline="black"),
        lambda: IntegratedGradients(baseline=float("nan")),
        lambda: IntegratedGradients(baseline=np.full((3, 4, 4), np.inf)),
        lambda: IntegratedGradients(baseline=True),
        lambda: IntegratedGradients(baseline={}),
        lambda: SmoothGrad(samples=0),
        lambda: SmoothGrad(sigma=-0.1),
        lambda: SmoothGrad(sigma="wide"),
        lambda: SmoothGrad(seed=-1),
        lambda: AGI(epsilon=0),
        lambda: AGI(path="paper"),
        lambda: AGI(class_selection="best"),
        lambda: AGI(bounds=(1, 0)),
        lambda: AGI(bounds=3),
        lambda: LA(spatial_range=0),
        lambda: LA(variant="code"),
        lambda: AttEXplore(rho=1.5),
        lambda: AttEXplore(input_diversity="crop"),
        lambda: AttEXplore(ti_size=4),
        lambda: AttEXplore(di_rate=1.0),
        lambda: AttEXplore(di_prob=2.0),
        lambda: AttEXplore(n_approx=0),
    ],
)
def test_bad_hyper_parameters_are_rejected(make) -> None:
    with pytest.raises(InvalidInputError):
        make()


def test_automatic_batch_size_follows_the_input_size(cnn: nn.Module) -> None:
    from onnxplain.gradients._common import auto_batch_size

    assert auto_batch_size(3 * 224 * 224) == 55 and auto_batch_size(1 * 28 * 28) == 1024
    assert auto_batch_size(10**9) == 1
    assert Saliency().explain(cnn, images(1)[0]).params["batch_size"] == 1024
    assert Saliency(batch_size=3).explain(cnn, images(1)[0]).params["batch_size"] == 3
