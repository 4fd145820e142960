"""Cascading model-parameter randomisation (Adebayo et al. 2018) through the ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError
from onnxplain.evaluation import randomisation_check
from onnxplain.explanation import Explanation

torch = pytest.importorskip("torch")


class InputAsMap:
    """An 'explainer' that ignores the model (returns x): it must fail the sanity check."""

    name = "input"

    def explain(self, model, x, target=None):
        x = np.asarray(x, np.float32)
        return Explanation(attributions=x.copy(), method="input", target=np.zeros(len(x), int), score=np.zeros(len(x)))


class UnnamedMap:
    """The same without a ``name`` attribute (its results are named after its class); it records
    the target it is asked for and the output layer's weights of the module it is given."""

    def __init__(self):
        self.seen = []

    def explain(self, model, x, target=None):
        self.seen.append((target, model[3].weight.detach().clone()))
        return InputAsMap().explain(model, x, target)


def _net():
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def check():
    from onnxplain.blackbox import GE
    from onnxplain.gradients import Saliency

    x = np.random.default_rng(0).uniform(size=(2, 1, 8, 8)).astype(np.float32)
    net = _net()
    before = [p.detach().clone() for p in net.parameters()]
    res = randomisation_check(net, x, blackbox=GE(n_queries=400, sigma=0.05, seed=1), whitebox=Saliency(), seed=3)
    after = list(net.parameters())
    return res, x, before, after


def test_trained_step_is_one_and_layers_run_top_down(check):
    # (the first test of the module fixture: mutation testing maps the fixture's calls to it, so the
    # recorded protocol is checked here too)
    check_recorded_protocol(check[0])
    res, _, before, after = check
    assert res.layers == ["3", "0"]  # the Linear (output) first, then the Conv
    for r in (res.blackbox, res.whitebox):
        assert r.curve.shape == (3,) and r.curves.shape == (2, 3)
        np.testing.assert_allclose(r.curve[0], 1.0)
        assert not r.higher_is_better
    assert res.predictions.shape == (2, 3)
    assert [row["layer"] for row in res.table()] == ["(trained)", "3", "0"]
    for p0, p1 in zip(before, after, strict=True):  # the caller's module is untouched
        assert torch.equal(p0, p1)


def test_gradient_maps_change_when_weights_are_destroyed(check):
    res, *_ = check
    assert res.whitebox.curve[-1] < 0.6  # a different network, a different gradient
    assert res.blackbox.curve[-1] < 0.6
    assert res.whitebox.score < 0.8


def test_a_model_independent_map_fails_the_check(tmp_path):
    x = np.random.default_rng(0).uniform(size=(1, 1, 8, 8)).astype(np.float32)
    whitebox = UnnamedMap()
    res = randomisation_check(_net(), x, blackbox=InputAsMap(), whitebox=whitebox, layers=["3"], work_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["randomised_00.onnx", "randomised_01.onnx"]
    assert res.blackbox.name == "randomisation_spearman[input]"
    assert res.whitebox.name == "randomisation_spearman[UnnamedMap]"
    np.testing.assert_allclose(res.blackbox.curve, 1.0)
    np.testing.assert_allclose(res.whitebox.curve, 1.0)
    assert res.blackbox.score == pytest.approx(1.0)
    # every step explains the trained model's class; the output layer is re-drawn from the seed's generator
    from onnxplain.evaluation.sanity import _randomise_layer

    assert [np.asarray(t).tolist() for t, _ in whitebox.seen] == [res.predictions[:, 0].tolist()] * 2
    expected = _net()[3]
    _randomise_layer(expected, torch.Generator().manual_seed(0))
    assert torch.equal(whitebox.seen[0][1], _net()[3].weight) and torch.equal(whitebox.seen[1][1], expected.weight)


def test_randomisation_errors():
    x = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(InvalidInputError, match="unknown layer"):
        randomisation_check(_net(), x, blackbox=InputAsMap(), whitebox=InputAsMap(), layers=["9"])
    with pytest.raises(InvalidInputError, match="at least one"):
        randomisation_check(_net(), x, blackbox=InputAsMap(), whitebox=InputAsMap(), layers=[])
    with pytest.raises(InvalidInputError, match="nn.Module"):
        randomisation_check(object(), x, blackbox=InputAsMap(), whitebox=InputAsMap())
    with pytest.raises(InvalidInputError, match="no parameters"):
        randomisation_check(torch.nn.ReLU(), x, blackbox=InputAsMap(), whitebox=InputAsMap())
    with pytest.raises(InvalidInputError, match="x must be"):
        randomisation_check(_net(), np.zeros(5), blackbox=InputAsMap(), whitebox=InputAsMap())


def check_recorded_protocol(res):
    """Every recorded parameter, the per-image and batch scores, the |map| curves."""
    for r in (res.blackbox, res.whitebox):
        assert set(r.params) == {"layers", "seed", "reduce", "output", "targets"}
        assert (r.params["layers"], r.params["seed"], r.params["reduce"], r.params["output"]) == (["3", "0"], 3, "mean", "probs")
        np.testing.assert_array_equal(r.params["targets"], res.predictions[:, 0])
        np.testing.assert_allclose(r.per_image, r.curves[:, 1:].mean(axis=1))
        assert r.score == pytest.approx(r.curve[1:].mean())
    assert res.table() == [
        {"layer": name, "blackbox_spearman": float(b), "whitebox_spearman": float(w)}
        for name, b, w in zip(["(trained)", "3", "0"], res.blackbox.curve, res.whitebox.curve, strict=True)
    ]
    assert set(res.abs_curves) == {"blackbox", "whitebox"}
    for curve in res.abs_curves.values():  # the same correlations on |map|: 1 for the trained model
        assert curve.shape == (3,) and curve[0] == pytest.approx(1.0)
    # the signed and absolute correlations differ once the maps change sign
    assert not np.allclose(res.abs_curves["whitebox"], res.whitebox.curve)


def test_layers_are_re_initialised_from_the_generator():
    from onnxplain.evaluation.sanity import _randomise_layer

    linear = torch.nn.Linear(16, 3)
    _randomise_layer(linear, torch.Generator().manual_seed(0))
    bound = 1 / 4  # 1/√fan_in
    for p in (linear.weight, linear.bias):
        assert p.abs().max() <= bound and p.abs().max() > 0.5 * bound and p.std() > 0.1 * bound
    again = torch.nn.Linear(16, 3)
    _randomise_layer(again, torch.Generator().manual_seed(0))
    assert torch.equal(again.weight, linear.weight)
    norm = torch.nn.BatchNorm2d(64)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(1.0, 3.0, 64))
    _randomise_layer(norm, torch.Generator().manual_seed(1))
    w = norm.weight.detach().double()
    # N(mean, std²) of the trained values: mean 2, std 0.59; a zero-spread bias gets std 1
    assert abs(w.mean() - 2.0) < 0.3 and 0.4 < w.std() < 0.8 and not torch.allclose(w, torch.linspace(1.0, 3.0, 64).double())
    assert 0.7 < norm.bias.detach().double().std() < 1.3
