"""The embedded default: the GEEX paper's MNIST CNN, shipped as ONNX and as torch weights.

Everything here loads from package data (no network, no ``../shared``). The ONNX model and the
torch module take float32 [0,1] pixels of shape (N, 1, 28, 28) and return 10 logits; the
MNIST normalisation (0.1307, 0.3081) is inside both.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from onnxplain.models.onnx import OnnxModel

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
LABELS = [str(i) for i in range(10)]


def _asset(name: str) -> Path:
    return Path(str(resources.files("onnxplain.demo").joinpath("assets", name)))


def demo_onnx_path() -> Path:
    """Path of the shipped ONNX model (dynamic batch, input ``pixels`` (N,1,28,28) in [0,1])."""
    return _asset("mnist_cnn.onnx")


def load_demo_model(**kwargs: Any) -> OnnxModel:
    """The demo model served by ONNX Runtime, as an :class:`~onnxplain.models.onnx.OnnxModel`."""
    from onnxplain.models.onnx import OnnxModel

    return OnnxModel(demo_onnx_path(), **kwargs)


def build_demo_net() -> torch.nn.Module:
    """The untrained architecture (LeNet-style: conv5×5·6, pool, conv5×5·16, pool, 120-84-10)."""
    from onnxplain.demo.net import MnistCNN

    return MnistCNN()


def load_demo_torch() -> torch.nn.Module:
    """The trained demo CNN in eval mode, wrapped to take [0,1] pixels (normalisation inside)."""
    import torch

    from onnxplain.export.wrap import PixelSpaceModel

    net = build_demo_net()
    state = torch.load(_asset("mnist_cnn.pt"), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return PixelSpaceModel(net, mean=MNIST_MEAN, std=MNIST_STD, input_shape=INPUT_SHAPE).eval()


def load_demo_digits() -> tuple[np.ndarray, np.ndarray]:
    """A handful of held-out MNIST digits: ``(images float32 (K,1,28,28) in [0,1], labels int64 (K,))``."""
    with np.load(_asset("digits.npz")) as data:
        return data["x"].astype(np.float32), data["y"].astype(np.int64)
