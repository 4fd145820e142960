"""SmoothGrad: parity with Captum's NoiseTunnel on the same noise, closed forms, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import NoiseTunnel
from captum.attr import Saliency as CaptumSaliency
from torch import nn

from onnxplain.gradients import Saliency, SmoothGrad
from onnxplain.gradients.smoothgrad import NOISE_BLOCK
from tests.gradients.gradient_helpers import images, make_linear


@pytest.mark.parametrize("use_abs", [False, True])
def test_equals_captum_noise_tunnel_given_the_same_noise(
    use_abs: bool, cnn64: nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = images(2, dtype=np.float64)
    sg = SmoothGrad(samples=9, sigma=0.2, seed=3, abs=use_abs, batch_size=8)
    noise = sg.noise((3, 16, 16), dtype=torch.float64)

    def same_noise(inp: torch.Tensor, stdev: float, n: int) -> torch.Tensor:
        assert n == 9 and stdev == 0.2
        return inp.repeat_interleave(n, dim=0) + noise.repeat(inp.shape[0], 1, 1, 1)

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(same_noise))
    ours = sg.explain(cnn64, x)
    theirs = NoiseTunnel(CaptumSaliency(nn.Sequential(cnn64, nn.Softmax(dim=1)))).attribute(
        torch.from_numpy(x),
        nt_type="smoothgrad",
        nt_samples=9,
        stdevs=0.2,
        target=ours.target.tolist(),
        abs=use_abs,
    )
    np.testing.assert_allclose(ours.attributions, theirs.numpy(), rtol=1e-9, atol=1e-15)


def test_noise_is_standard_normal_scaled_and_independent_of_chunking() -> None:
    sg = SmoothGrad(samples=3 * NOISE_BLOCK + 5, sigma=0.3, seed=1)
    full = sg.noise((2, 8, 8), dtype=torch.float64)
    assert full.shape == (3 * NOISE_BLOCK + 5, 2, 8, 8)
    assert float(full.std()) == pytest.approx(0.3, rel=0.05) and abs(float(full.mean())) < 0.01
    part = sg.noise((2, 8, 8), start=NOISE_BLOCK - 3, stop=2 * NOISE_BLOCK + 4, dtype=torch.float64)
    torch.testing.assert_close(part, full[NOISE_BLOCK - 3 : 2 * NOISE_BLOCK + 4])
    assert not torch.equal(
        full, SmoothGrad(samples=3 * NOISE_BLOCK + 5, sigma=0.3, seed=2).noise((2, 8, 8), dtype=torch.float64)
    )


def test_batch_size_does_not_change_the_result(cnn64: nn.Module) -> None:
    x = images(3, dtype=np.float64)
    a = SmoothGrad(samples=40, batch_size=7).explain(cnn64, x)
    b = SmoothGrad(samples=40, batch_size=64).explain(cnn64, x)
    np.testing.assert_allclose(a.attributions, b.attributions, rtol=1e-9, atol=1e-15)


def test_zero_noise_is_saliency_and_linear_logits_give_the_weights(cnn64: nn.Module) -> None:
    x = images(2, dtype=np.float64)
    np.testing.assert_allclose(
        SmoothGrad(samples=3, sigma=0.0).explain(cnn64, x).attributions,
        Saliency().explain(cnn64, x).attributions,
        rtol=1e-12,
        atol=1e-16,
    )
    model = make_linear(3 * 8 * 8)
    e = SmoothGrad(samples=5, sigma=0.5, output="logits").explain(
        model, images(1, (3, 8, 8), dtype=np.float64)[0], 6
    )
    np.testing.assert_allclose(
        e.attributions, model[1].weight[6].detach().numpy().reshape(3, 8, 8), rtol=1e-12
    )


def test_deterministic_under_a_seed_and_seed_sensitive(cnn: nn.Module) -> None:
    x = images(2)
    torch.manual_seed(123)  # the global RNG plays no part
    a = SmoothGrad(samples=6, seed=5).explain(cnn, x)
    torch.manual_seed(999)
    np.random.seed(7)
    b = SmoothGrad(samples=6, seed=5).explain(cnn, x)
    c = SmoothGrad(samples=6, seed=6).explain(cnn, x)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert not np.allclose(a.attributions, c.attributions)
    assert a.params["seed"] == 5 and a.params["sigma"] == 0.15 and a.params["samples"] == 6
