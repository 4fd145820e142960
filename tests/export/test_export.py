"""export_onnx: ORT-vs-torch parity, metadata, IR version, failure modes; torchvision loading."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
import torchvision

from onnxplain.demo import INPUT_SHAPE, MNIST_MEAN, MNIST_STD, build_demo_net, load_demo_torch
from onnxplain.errors import ExportError, InvalidInputError, ModelLoadError, UnsafeWeightsError
from onnxplain.export import PixelSpaceModel, export_onnx, load_state_dict, load_torchvision
from onnxplain.models import OnnxModel, TorchModel


def assert_parity(onnx_path, module: torch.nn.Module, shape: tuple[int, ...], atol: float) -> None:
    """Independent of export_onnx's own check: OnnxModel vs TorchModel at batch sizes 1, 2, 7."""
    ort_model = OnnxModel(onnx_path, output="logits", device="cpu", batch_size=7)
    torch_model = TorchModel(module, shape, output="logits")
    rng = np.random.default_rng(3)
    for n in (1, 2, 7):
        x = rng.random((n, *shape), dtype=np.float32)
        a, b = ort_model(x), torch_model(x)
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4)
        np.testing.assert_array_equal(a.argmax(1), b.argmax(1))


def test_demo_cnn_export_parity(tmp_path) -> None:
    torch.manual_seed(0)
    net = build_demo_net()
    path = tmp_path / "cnn.onnx"
    report = export_onnx(net, path, INPUT_SHAPE, normalize=(MNIST_MEAN, MNIST_STD), labels=list("0123456789"))
    assert report.num_classes == 10 and report.top1_agreement == 1.0 and report.max_abs_diff < 1e-4
    assert report.parity_batch_sizes == (1, 2, 7)
    proto = onnx.load(path)
    assert proto.ir_version <= 13  # what ONNX Runtime 1.31 reads
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["labels"]) == list("0123456789")
    assert json.loads(meta["normalize_mean"]) == [0.1307]
    assert OnnxModel(path).labels == list("0123456789")
    # normalisation is inside the graph: the ONNX model equals the wrapped torch module on [0,1] pixels
    assert_parity(path, PixelSpaceModel(net, MNIST_MEAN, MNIST_STD), INPUT_SHAPE, atol=1e-4)


def test_resnet18_export_parity(tmp_path) -> None:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=1000).eval()
    path = tmp_path / "r18.onnx"
    shape = (3, 96, 96)
    report = export_onnx(net, path, shape, normalize=((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    assert report.num_classes == 1000 and report.top1_agreement == 1.0
    wrapped = PixelSpaceModel(net, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert_parity(path, wrapped, shape, atol=5e-4)


def test_shipped_demo_model_matches_shipped_weights() -> None:
    from onnxplain.demo import demo_onnx_path, load_demo_digits

    assert_parity(demo_onnx_path(), load_demo_torch(), INPUT_SHAPE, atol=1e-4)
    x, y = load_demo_digits()
    assert x.shape[1:] == INPUT_SHAPE and x.min() >= 0 and x.max() <= 1 and len(x) == len(y)
    accuracy = (OnnxModel(demo_onnx_path())(x).argmax(1) == y).mean()
    assert accuracy >= 0.8


class NoisyNet(torch.nn.Module):
    """Not a deterministic function: torch and ONNX Runtime draw different noise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)[:, :4]
        return flat + torch.rand_like(flat)


def test_parity_failure_writes_nothing(tmp_path) -> None:
    path = tmp_path / "noisy.onnx"
    with pytest.raises(ExportError, match="disagrees"):
        export_onnx(NoisyNet(), path, (1, 4, 4))
    assert not path.exists() and not list(tmp_path.iterdir())


def test_export_bad_arguments(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="input_shape"):
        export_onnx(build_demo_net(), tmp_path / "x.onnx", (28, 28))
    with pytest.raises(InvalidInputError, match="labels"):
        export_onnx(build_demo_net(), tmp_path / "x.onnx", INPUT_SHAPE, labels=["a", "b"])


class Payload:
    """An arbitrary object: a weights file holding it must not be unpickled."""


def test_unsafe_weights_refused(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": Payload()}, path)
    with pytest.raises(UnsafeWeightsError, match="weights_only"):
        load_state_dict(path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_state_dict(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(ModelLoadError):
        load_state_dict(tmp_path / "junk.pt")


def test_load_torchvision_from_local_weights(tmp_path) -> None:
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    loaded = load_torchvision("resnet18", path, num_classes=7)
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), source(x))
    with pytest.raises(InvalidInputError, match="unknown torchvision architecture"):
        load_torchvision("resnet1800")
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_torchvision("resnet34", path, num_classes=7)


def test_inception_v3_specifics(tmp_path) -> None:
    torch.manual_seed(0)
    source = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, num_classes=5)
    path = tmp_path / "inc.pt"
    torch.save(source.state_dict(), path)
    model = load_torchvision("inception_v3", path, num_classes=5)
    assert model.transform_input and model.AuxLogits is None
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 96, 96))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)  # one output, not InceptionOutputs
