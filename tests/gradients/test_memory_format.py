"""The module during a call: channels-last layout, frozen parameters, and both undone afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onnxplain.errors import InvalidInputError, NonFiniteOutputError
from onnxplain.gradients import IntegratedGradients, Saliency
from onnxplain.gradients._common import sum_groups
from tests.gradients.gradient_helpers import FAST, images, make_cnn, make_linear


class ViewNet(nn.Module):
    """Flattens with ``.view``, which channels-last activations cannot do."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.shape[0], -1))


class Layouts(nn.Module):
    """Records the layout of every input the wrapped module receives."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.channels_last: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.channels_last.append(
            x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        )
        return self.inner(x)


Snapshot = list[tuple[int, tuple[int, ...], bool]]


def snapshot(model: nn.Module) -> Snapshot:
    """(storage address, strides, requires_grad) of every parameter."""
    return [(p.data_ptr(), p.stride(), p.requires_grad) for p in model.parameters()]


def assert_restored(model: nn.Module, before: Snapshot) -> None:
    assert snapshot(model) == before


@pytest.mark.parametrize("name", sorted(FAST))
def test_channels_last_gives_the_default_layouts_map(name: str) -> None:
    cnn = make_cnn()
    x = images(2)
    fast = FAST[name]().explain(cnn, x)
    plain = FAST[name](memory_format="preserve").explain(cnn, x)
    assert fast.params["memory_format"] == "channels_last"
    assert plain.params["memory_format"] == "preserve"
    np.testing.assert_array_equal(fast.target, plain.target)
    scale = np.abs(plain.attributions).max()
    np.testing.assert_allclose(fast.attributions, plain.attributions, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(fast.score, plain.score, rtol=1e-5)


def test_the_model_sees_channels_last_inputs_and_is_restored_afterwards() -> None:
    model = Layouts(make_cnn())
    model.inner[0].weight.requires_grad_(False)  # a mixed set of flags must come back as it was
    before = snapshot(model)
    IntegratedGradients(steps=3).explain(model, images(2))
    assert model.channels_last and all(model.channels_last)
    assert_restored(model, before)
    model.channels_last.clear()
    IntegratedGradients(steps=3, memory_format="preserve").explain(model, images(2))
    assert model.channels_last and not any(model.channels_last)
    assert_restored(model, before)


def test_parameters_are_frozen_during_the_call() -> None:
    seen: list[bool] = []

    class Spy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = make_cnn()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(any(p.requires_grad for p in self.parameters()))
            return self.inner(x)

    spy = Spy()
    e = Saliency().explain(spy, images(1)[0])
    assert seen and not any(seen)
    assert all(p.requires_grad for p in spy.parameters())
    assert np.abs(e.attributions).max() > 0  # input gradients still flow


def test_a_model_that_cannot_run_channels_last_falls_back_to_its_own_layout() -> None:
    net = ViewNet().eval()
    x = images(2)
    with pytest.raises(RuntimeError):  # the premise: .view fails on channels-last activations
        net.to(memory_format=torch.channels_last)(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
    net = ViewNet().eval()
    before = snapshot(net)
    auto = IntegratedGradients(steps=4).explain(net, x)
    assert auto.params["memory_format"] == "preserve"
    assert_restored(net, before)
    plain = IntegratedGradients(steps=4, memory_format="preserve").explain(net, x)
    np.testing.assert_array_equal(auto.attributions, plain.attributions)
    # asked for explicitly, channels-last still falls back rather than failing
    forced = IntegratedGradients(steps=4, memory_format="channels_last").explain(net, x)
    np.testing.assert_array_equal(forced.attributions, plain.attributions)


@pytest.mark.parametrize("name", ["ig", "smoothgrad"])
def test_the_fallback_also_covers_a_first_forward_on_a_channels_last_chunk(name: str) -> None:
    # with an explicit target IG skips the forward of x, so its first forward is a path chunk,
    # which is written channels-last; SmoothGrad's chunks are too
    x = images(2)
    auto = FAST[name]().explain(ViewNet().eval(), x, target=[1, 2])
    assert auto.params["memory_format"] == "preserve"
    plain = FAST[name](memory_format="preserve").explain(ViewNet().eval(), x, target=[1, 2])
    np.testing.assert_array_equal(auto.attributions, plain.attributions)


@pytest.mark.parametrize("name", sorted(FAST))
def test_attributions_come_back_c_contiguous_in_the_inputs_layout(name: str) -> None:
    e = FAST[name]().explain(make_cnn(), images(2))
    assert e.params["memory_format"] == "channels_last"
    assert e.attributions.shape == (2, 3, 16, 16)
    assert e.attributions.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("channels_last", [False, True])
def test_sum_groups_sums_consecutive_rows_in_either_layout(channels_last: bool) -> None:
    g = torch.randn(6, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([g[0:3].sum(0), g[3:6].sum(0)])
    if channels_last:
        g = g.contiguous(memory_format=torch.channels_last)
    out = sum_groups(g, 2)
    assert out.shape == (2, 3, 5, 4)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    # the same values, bit for bit, as the strided reduction over the NCHW view
    torch.testing.assert_close(out, g.reshape(2, 3, 3, 5, 4).sum(dim=1), rtol=0, atol=0)
    flat = torch.arange(12.0).view(6, 2)  # not 4-D: the plain reshape-sum
    torch.testing.assert_close(sum_groups(flat, 3), flat.view(3, 2, 2).sum(1))


def test_a_genuine_model_error_is_not_swallowed_by_the_fallback() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("broken model")

    broken = Broken()
    before = snapshot(broken)
    # on the first forward a module's error is reported as the (model, x) pair's, the cause kept
    with pytest.raises(InvalidInputError, match="broken model") as info:
        Saliency().explain(broken, images(1)[0], target=0)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert_restored(broken, before)


def test_the_module_is_restored_when_the_call_fails() -> None:
    class NaNNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean((2, 3)) * float("nan")

    net = NaNNet()
    before = snapshot(net)
    with pytest.raises(NonFiniteOutputError):
        Saliency().explain(net, images(1)[0])
    assert_restored(net, before)


def test_auto_keeps_the_default_layout_where_channels_last_cannot_help() -> None:
    x64 = images(1)[0].astype(np.float64)
    assert Saliency().explain(make_cnn(torch.float64), x64).params["memory_format"] == "preserve"
    linear = make_linear(3 * 16 * 16, dtype=torch.float32)
    assert Saliency().explain(linear, images(1)[0]).params["memory_format"] == "preserve"


def test_an_unknown_memory_format_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="memory_format"):
        Saliency(memory_format="nhwc")  # type: ignore[arg-type]
