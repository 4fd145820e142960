"""The benchmark models (demo MNIST CNN, random-weight ResNet-18, a small 224×224 CNN), inputs and devices."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.paths import CACHE_DIR, IMAGENET_MEAN, IMAGENET_STD
from benchmarks.harness.reporting import _version


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--rehearse-cuda-path`` for the scripts that run onnxplain on a model."""
    parser.add_argument(
        "--device", default="cpu", help="device of onnxplain's OnnxModel: cpu (default), cuda, cuda:<i>"
    )
    parser.add_argument(
        "--rehearse-cuda-path",
        action="store_true",
        help="on CPU, run the CUDA code path: IO binding with fixed chunk shapes + torch-built perturbations",
    )


def query_model(
    path: str | os.PathLike[str], device: str = "cpu", rehearse: bool = False, **kwargs: Any
) -> Any:
    """onnxplain's ``OnnxModel(output="probs")`` on ``device``; ``rehearse`` forces IO binding on CPU."""
    from onnxplain.models import OnnxModel

    if rehearse or device.startswith("cuda"):
        import torch  # noqa: F401  (the torch backend imports it lazily: keep that out of timed calls)
    return OnnxModel(path, output="probs", device=device, io_binding=True if rehearse else None, **kwargs)


def backend(rehearse: bool = False) -> str:
    """Explainer backend: ``"auto"`` (torch on CUDA models, numpy on CPU) or ``"torch"`` to rehearse."""
    return "torch" if rehearse else "auto"


# -- the machine --------------------------------------------------------------------------------


def demo_onnx() -> Path:
    """The shipped demo MNIST CNN (1×28×28 [0,1] pixels → 10 logits)."""
    from onnxplain.demo import demo_onnx_path

    return Path(demo_onnx_path())


def resnet18_torch(seed: int = 0) -> Any:
    """torchvision ResNet-18, random weights (seeded), taking [0,1] pixels (ImageNet normalisation inside)."""
    import torch
    import torchvision

    from onnxplain.export.wrap import PixelSpaceModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torchvision.models.resnet18(weights=None, num_classes=1000)
    return PixelSpaceModel(net, mean=IMAGENET_MEAN, std=IMAGENET_STD, input_shape=(3, 224, 224)).eval()


def small224_torch(seed: int = 0) -> Any:
    """A small 3×224×224 CNN (random weights, seeded) for overhead- and memory-bound comparisons.

    Strided convolutions down to 14×14, global average pooling, 10 classes: ≈ 30 MFLOP per
    sample, so the explainers' own work (mask/noise generation, copies) is what gets measured.
    """
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(3, 16, 7, stride=4, padding=3),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )
    return net.eval()


_MODELS: dict[str, tuple[Callable[[], Any], tuple[int, int, int], Any]] = {
    "resnet18": (resnet18_torch, (3, 224, 224), None),
    "small224": (small224_torch, (3, 224, 224), None),
}


def torch_model(name: str) -> Any:
    """The benchmark torch module ``name`` ("resnet18", "small224", "demo"), in eval mode."""
    if name == "demo":
        from onnxplain.demo import load_demo_torch

        return load_demo_torch()
    return _MODELS[name][0]()


def onnx_model_path(name: str) -> Path:
    """The ONNX file of benchmark model ``name``, exported once with ``onnxplain.export.export_onnx``.

    Exports are cached in ``$ONNXPLAIN_BENCH_CACHE`` (default: ``<tmp>/onnxplain-bench``; the
    files are large and never committed), keyed by the torch version.
    """
    if name == "demo":
        return demo_onnx()
    builder, shape, _ = _MODELS[name]
    torch_version = _version("torch") or "torch"
    path = CACHE_DIR / f"{name}-torch{torch_version}.onnx"
    if not path.exists():
        from onnxplain.export import export_onnx

        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        module = builder()
        # ImageNet normalisation, if any, is inside the module (PixelSpaceModel): export as is.
        export_onnx(module, path, shape, source=name)
    return path


def input_shape_of(name: str) -> tuple[int, int, int]:
    return (1, 28, 28) if name == "demo" else _MODELS[name][1]


def natural_image(size: int = 224) -> np.ndarray:
    """scikit-image's bundled ``chelsea`` photo, centre-cropped and resized: (3, size, size) in [0,1]."""
    from skimage import data, transform

    img = data.chelsea().astype(np.float32) / 255.0
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[top : top + side, left : left + side]
    img = transform.resize(img, (size, size), order=1, anti_aliasing=True).astype(np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def demo_digit(index: int = 0) -> np.ndarray:
    """One held-out MNIST digit shipped with the demo: (1, 28, 28) in [0,1]."""
    from onnxplain.demo import load_demo_digits

    x, _ = load_demo_digits()
    return x[index]


# -- statistics of maps ------------------------------------------------------------------------


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (flattened)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


# -- publishing ---------------------------------------------------------------------------------
