"""Integrated Gradients: completeness, closed forms, Captum parity, baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from torch import nn
from torchvision.transforms.functional import gaussian_blur as tv_gaussian_blur

from onnxplain.errors import InvalidInputError
from onnxplain.filters import blur_torch as gaussian_blur
from onnxplain.gradients import IntegratedGradients
from onnxplain.gradients.integrated import quadrature
from tests.gradients.gradient_helpers import images, make_cnn, make_linear


@pytest.mark.parametrize("rule", ["trapezoid", "riemann_right", "gausslegendre"])
def test_quadrature_rules_integrate_polynomials(rule: str) -> None:
    alphas, weights = quadrature(rule, 40)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all((alphas >= 0) & (alphas <= 1))
    exact = {"trapezoid": 1e-3, "riemann_right": 3e-2, "gausslegendre": 1e-12}[rule]
    assert abs(np.dot(weights, alphas**2) - 1 / 3) < exact


def test_completeness_on_a_small_cnn_with_softmax_output() -> None:
    """Σ IG = p_y(x) − p_y(0) up to the trapezoid error, which falls as 1/m² on a smooth net."""
    model = make_cnn(torch.float64, smooth=True)
    x = images(2, dtype=np.float64)
    coarse = IntegratedGradients(steps=50).explain(model, x)
    half = IntegratedGradients(steps=150).explain(model, x)
    fine = IntegratedGradients(steps=300).explain(model, x)
    delta = np.asarray(fine.score) - np.asarray(fine.baseline_score)
    assert np.all(np.abs(delta) > 1e-3)  # a meaningful difference to complete
    assert np.all(np.abs(coarse.completeness_gap) < 5e-2 * np.abs(delta))
    assert np.all(np.abs(fine.completeness_gap) < 1e-3 * np.abs(delta))
    assert np.all(np.abs(fine.completeness_gap) < 0.3 * np.abs(half.completeness_gap))  # second order
    np.testing.assert_allclose(fine.diagnostics["completeness_gap"], fine.completeness_gap)
    np.testing.assert_allclose(
        fine.diagnostics["relative_completeness_gap"], fine.completeness_gap / np.abs(delta)
    )
    with torch.no_grad():
        p0 = torch.softmax(model(torch.zeros(1, 3, 16, 16, dtype=torch.float64)), 1)[0]
    np.testing.assert_allclose(fine.baseline_score, p0[fine.target].numpy(), rtol=1e-12)


@pytest.mark.parametrize("rule", ["trapezoid", "riemann_right", "gausslegendre"])
def test_linear_logits_give_the_closed_form(rule: str) -> None:
    model = make_linear(3 * 8 * 8)
    x = images(2, shape=(3, 8, 8), dtype=np.float64)
    base = np.full((3, 8, 8), 0.25)
    e = IntegratedGradients(steps=7, rule=rule, baseline=base, output="logits").explain(
        model, x, target=[1, 4]
    )
    w = model[1].weight.detach().numpy()
    expected = (x - base) * w[[1, 4]].reshape(2, 3, 8, 8)
    np.testing.assert_allclose(e.attributions, expected, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(e.completeness_gap, 0.0, atol=1e-10)


@pytest.mark.parametrize(
    "rule, captum_rule", [("riemann_right", "riemann_right"), ("gausslegendre", "gausslegendre")]
)
def test_parity_with_captum(rule: str, captum_rule: str, cnn64: nn.Module) -> None:
    x = images(3, dtype=np.float64)
    ours = IntegratedGradients(steps=16, rule=rule, batch_size=20).explain(cnn64, x)
    theirs = CaptumIG(nn.Sequential(cnn64, nn.Softmax(dim=1))).attribute(
        torch.from_numpy(x), target=torch.from_numpy(ours.target), n_steps=16, method=captum_rule
    )
    theirs = theirs.numpy()
    np.testing.assert_allclose(ours.attributions, theirs, rtol=1e-5, atol=1e-5 * np.abs(theirs).max())


def test_trapezoid_is_captums_riemann_trapezoid_up_to_its_weight_sum(cnn64: nn.Module) -> None:
    """Captum's trapezoid weights are 1/m (ends halved) and sum to (m−1)/m; ours sum to 1."""
    x = images(2, dtype=np.float64)
    m = 12
    ours = IntegratedGradients(steps=m, rule="trapezoid").explain(cnn64, x, target=[0, 5])
    theirs = CaptumIG(nn.Sequential(cnn64, nn.Softmax(dim=1))).attribute(
        torch.from_numpy(x), target=[0, 5], n_steps=m, method="riemann_trapezoid"
    )
    expected = theirs.numpy() * m / (m - 1)
    np.testing.assert_allclose(ours.attributions, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_blur_matches_torchvision_gaussian_blur() -> None:
    x = torch.from_numpy(images(2, shape=(3, 20, 24), dtype=np.float64))
    ours = gaussian_blur(x)
    theirs = tv_gaussian_blur(x, [31, 31], [5.0, 5.0])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-12)
    small = gaussian_blur(x[..., :6, :6])  # defined below torch's reflect-padding limit too
    assert small.shape == (2, 3, 6, 6) and torch.isfinite(small).all()
    np.testing.assert_allclose(
        gaussian_blur(torch.ones(1, 1, 5, 7, dtype=torch.float64)).numpy(), 1.0, atol=1e-12
    )


def test_blur_constant_and_array_baselines(cnn64: nn.Module) -> None:
    x = images(2, dtype=np.float64)
    blurred = tv_gaussian_blur(torch.from_numpy(x), [31, 31], [5.0, 5.0])
    e_blur = IntegratedGradients(steps=8, baseline="blur").explain(cnn64, x)
    e_arr = IntegratedGradients(steps=8, baseline=blurred.numpy()).explain(cnn64, x)
    np.testing.assert_allclose(e_blur.attributions, e_arr.attributions, rtol=1e-9, atol=1e-14)
    assert e_blur.params["baseline"] == "blur(31,5.0)" and e_arr.params["baseline"] == "array(2, 3, 16, 16)"
    with torch.no_grad():
        pb = torch.softmax(cnn64(blurred), 1)
    np.testing.assert_allclose(e_blur.baseline_score, pb[[0, 1], e_blur.target].numpy(), rtol=1e-12)
    e_half = IntegratedGradients(steps=8, baseline=0.5).explain(cnn64, x[0])
    e_half_arr = IntegratedGradients(steps=8, baseline=np.full((3, 16, 16), 0.5)).explain(cnn64, x[0])
    np.testing.assert_allclose(e_half.attributions, e_half_arr.attributions, rtol=1e-12)
    zero = IntegratedGradients(steps=8).explain(cnn64, x[0])
    assert not np.allclose(zero.attributions, e_half.attributions)


def test_baseline_of_the_wrong_shape_is_rejected(cnn: nn.Module) -> None:
    with pytest.raises(InvalidInputError, match="baseline has shape"):
        IntegratedGradients(steps=4, baseline=np.zeros((3, 8, 8))).explain(cnn, images(1)[0])
