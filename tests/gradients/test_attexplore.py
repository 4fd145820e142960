"""AttEXplore: DCT, the MI-FGSM special case, path invariants, sign, batches, input diversity."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from scipy.stats import norm
from torch import nn

from onnxplain.errors import InvalidInputError
from onnxplain.gradients import AttEXplore
from onnxplain.gradients import attexplore as attexplore_module
from onnxplain.gradients.attexplore import ti_kernel
from onnxplain.gradients.dct import dct2, idct2, spectrum_transform
from tests.gradients.gradient_helpers import Recorder, images, make_cnn

EPS = 16 / 255


def test_dct_round_trip_and_scipy_parity() -> None:
    x = torch.from_numpy(np.random.default_rng(0).random((2, 3, 12, 20)))
    y = dct2(x)
    np.testing.assert_allclose(
        y.numpy(), scipy.fft.dctn(x.numpy(), type=2, axes=(-2, -1), norm="ortho"), atol=1e-12
    )
    np.testing.assert_allclose(idct2(y).numpy(), x.numpy(), atol=1e-12)
    x32 = x.float()
    assert float((idct2(dct2(x32)) - x32).abs().max()) <= 1e-5


def test_spectral_mask_does_not_depend_on_the_dct_normalisation() -> None:
    rng = np.random.default_rng(1)
    x, mask = rng.random((3, 16, 16)), rng.uniform(0.5, 1.5, (3, 16, 16))
    unnormalised = scipy.fft.idctn(scipy.fft.dctn(x, axes=(-2, -1)) * mask, axes=(-2, -1))  # norm=None
    ours = spectrum_transform(
        torch.from_numpy(x), torch.zeros(3, 16, 16, dtype=torch.float64), torch.from_numpy(mask)
    )
    np.testing.assert_allclose(ours.numpy(), unnormalised, atol=1e-12)


def test_zero_noise_and_unit_mask_is_the_identity() -> None:
    x = torch.from_numpy(images(2, dtype=np.float64))
    out = spectrum_transform(x, torch.zeros_like(x), torch.ones_like(x))
    np.testing.assert_allclose(out.numpy(), x.numpy(), atol=1e-12)
    method = AttEXplore(rho=0.0, noise_sigma=0.0, n_approx=3)
    xi, mask, _ = method.draws(0, (3, 16, 16), torch.device("cpu"), torch.float64)
    assert torch.all(xi == 0) and torch.all(mask == 1)


def test_ti_kernel_is_the_normalised_gaussian() -> None:
    k = ti_kernel(7)
    pdf = norm.pdf(np.linspace(-3, 3, 7))
    np.testing.assert_allclose(k, np.outer(pdf, pdf) / np.outer(pdf, pdf).sum(), rtol=1e-12)


def _mi_fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, ti: bool
) -> tuple[torch.Tensor, list]:
    """AttEXplore without its augmentations (ρ = σ = 0, DI off): MI-FGSM with the path integral."""
    alpha = EPS / steps
    kernel = torch.from_numpy(np.outer(norm.pdf(np.linspace(-3, 3, 7)), norm.pdf(np.linspace(-3, 3, 7))))
    kernel = (kernel / kernel.sum()).to(x.dtype).expand(3, 1, 7, 7)
    xt, big_g, a, gs = x.clone(), torch.zeros_like(x), torch.zeros_like(x), []
    for _ in range(steps):
        z = xt.clone().requires_grad_(True)
        loss = F.cross_entropy(torch.softmax(model(z), 1), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, z)
        if ti:
            g = F.conv2d(g, kernel, padding=3, groups=3)
        g = g / g.abs().mean(dim=(1, 2, 3), keepdim=True)
        big_g = big_g + g
        gs.append(big_g)
        nxt = torch.clamp(x + torch.clamp(xt - alpha * torch.sign(big_g) - x, -EPS, EPS), 0, 1)
        a -= (nxt - xt) * big_g
        xt = nxt
    return a, gs


@pytest.mark.parametrize("ti", [False, True])
def test_without_augmentations_it_is_mi_fgsm(ti: bool, cnn64: nn.Module) -> None:
    x = torch.from_numpy(0.3 + 0.4 * images(2, dtype=np.float64))  # interior: no [0,1] clipping
    steps = 4
    e = AttEXplore(
        n_approx=2, steps=steps, rho=0.0, noise_sigma=0.0, input_diversity=False, ti_size=7 if ti else 1
    ).explain(cnn64, x)
    expected, gs = _mi_fgsm(cnn64, x, torch.from_numpy(e.target), steps, ti)
    np.testing.assert_allclose(e.attributions, expected.numpy(), rtol=1e-9, atol=1e-15)
    # the steps are never clipped here, so A = α Σ_t |G_t|
    np.testing.assert_allclose(e.attributions, (EPS / steps * sum(g.abs() for g in gs)).numpy(), rtol=1e-9)
    assert e.n_queries == 2 + 2 * 2 * steps and e.n_backward == 2 * 2 * steps


def test_path_stays_within_epsilon_and_in_the_unit_box(monkeypatch: pytest.MonkeyPatch) -> None:
    iterates: list[torch.Tensor] = []

    def recording(x: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        iterates.append(x.detach().clone()[0])
        return spectrum_transform(x, noise, mask)

    monkeypatch.setattr(attexplore_module, "spectrum_transform", recording)
    x = torch.from_numpy(images(2))
    x[:, 0, 8:, 8:] = 1.0  # on the upper bound
    AttEXplore(epsilon=EPS, n_approx=2, steps=6).explain(make_cnn(), x)
    path = torch.stack(iterates)
    assert path.shape[0] == 6 * 1  # one x_t per step (both n in one chunk)
    assert float(path.min()) >= 0.0 and float(path.max()) <= 1.0
    assert float((path - x[None]).abs().max()) <= EPS + 1e-6
    assert float((path[-1] - x).abs().max()) > EPS / 2  # it did walk


def test_queries_are_the_path_itself_without_augmentations() -> None:
    rec = Recorder(make_cnn())
    x = torch.from_numpy(images(1))
    AttEXplore(n_approx=1, steps=5, rho=0.0, noise_sigma=0.0, input_diversity=False).explain(rec, x)
    q = rec.queries()
    assert q.shape[0] == 1 + 5
    assert float(q.min()) >= 0.0 and float(q.max()) <= 1.0
    assert float((q - x).abs().max()) <= EPS + 1e-6


def test_reference_maps_are_non_negative(cnn: nn.Module) -> None:
    e = AttEXplore(n_approx=3, steps=4).explain(cnn, images(2))
    a = e.attributions
    assert float(a.min()) >= -1e-8 * float(np.abs(a).max()) and float(a.max()) > 0


def test_batch_invariance_with_every_augmentation_on(cnn64: nn.Module) -> None:
    x = images(4, dtype=np.float64)
    method = AttEXplore(n_approx=3, steps=2, batch_size=5)
    batch = method.explain(cnn64, x)
    alone = method.explain(cnn64, x[2])
    np.testing.assert_allclose(alone.attributions, batch.attributions[2], rtol=1e-8, atol=1e-12)


def test_deterministic_under_a_seed_and_seed_sensitive(cnn: nn.Module) -> None:
    x = images(1)[0]
    torch.manual_seed(0)
    a = AttEXplore(n_approx=2, steps=2, seed=9).explain(cnn, x)
    torch.manual_seed(1)
    np.random.seed(1)
    b = AttEXplore(n_approx=2, steps=2, seed=9).explain(cnn, x)
    c = AttEXplore(n_approx=2, steps=2, seed=10).explain(cnn, x)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert not np.allclose(a.attributions, c.attributions)
    assert a.params["seed"] == 9 and a.params["epsilon"] == pytest.approx(16 / 255)


def test_input_diversity_pads_to_the_larger_canvas() -> None:
    rec = Recorder(make_cnn())
    x = images(1)[0]
    AttEXplore(n_approx=2, steps=1, di_prob=1.0, input_diversity="pad").explain(rec, x)
    assert [tuple(b.shape[-2:]) for b in rec.inputs] == [(16, 16), (18, 18)]  # ⌊1.15·16⌋ = 18
    q = rec.inputs[1]
    border = torch.cat([q[..., 0, :], q[..., -1, :], q[..., :, 0], q[..., :, -1]], dim=-1)
    assert bool((border == 0).any())  # zero padding somewhere on the border
    rec.inputs.clear()
    AttEXplore(n_approx=2, steps=1, di_prob=1.0, input_diversity="resize").explain(rec, x)
    assert [tuple(b.shape[-2:]) for b in rec.inputs] == [(16, 16), (16, 16)]


def test_fixed_size_models_fall_back_to_resize_diversity_by_default() -> None:
    fixed = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))
    x = images(1)[0]
    with pytest.raises(InvalidInputError, match="input_diversity='resize'"):
        AttEXplore(n_approx=2, steps=1, di_prob=1.0, input_diversity="pad").explain(fixed, x)
    e = AttEXplore(n_approx=2, steps=1, di_prob=1.0).explain(fixed, x)
    forced = AttEXplore(n_approx=2, steps=1, di_prob=1.0, input_diversity="resize").explain(fixed, x)
    assert e.attributions.shape == (3, 16, 16) and e.params["input_diversity"] == "resize"
    np.testing.assert_array_equal(e.attributions, forced.attributions)
    assert e.n_queries == forced.n_queries  # the failed probe returned nothing, so counts nothing


def test_models_that_take_any_size_keep_the_reference_padding() -> None:
    rec = Recorder(make_cnn())
    x = images(1)[0]
    e = AttEXplore(n_approx=2, steps=1, di_prob=1.0).explain(rec, x)
    assert e.params["input_diversity"] == "pad"
    assert (18, 18) in [tuple(b.shape[-2:]) for b in rec.inputs]
    # the probe is one counted forward, made once per module and image size
    again = AttEXplore(n_approx=2, steps=1, di_prob=1.0).explain(rec, x)
    assert e.n_queries == again.n_queries + 1
    np.testing.assert_array_equal(e.attributions, again.attributions)


def test_inputs_outside_the_unit_box_are_rejected(cnn: nn.Module) -> None:
    with pytest.raises(InvalidInputError, match="bounds"):
        AttEXplore(n_approx=1, steps=1).explain(cnn, images(1)[0] - 0.5)
