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


def test_a_model_independent_map_fails_the_check():
    x = np.random.default_rng(0).uniform(size=(1, 1, 8, 8)).astype(np.float32)
    res = randomisation_check(_net(), x, blackbox=InputAsMap(), whitebox=InputAsMap(), layers=["3"])
    np.testing.assert_allclose(res.blackbox.curve, 1.0)
    np.testing.assert_allclose(res.whitebox.curve, 1.0)
    assert res.blackbox.score == pytest.approx(1.0)


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
