"""Tiny ONNX models and image files for the CLI tests (built here: no network, no ../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from onnxplain.cli import main


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def linear_model(path: Path, c: int = 1, h: int = 8, w: int = 8, k: int = 3, *, bias: float = 0.0, seed: int = 0) -> Path:
    """logits = flatten(x) @ W + b, input (N, c, h, w) float32, output (N, k)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(c * h * w, k)).astype(np.float32)
    b = np.full((k,), bias, np.float32)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", k])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")],
    )
    return _save(graph, path)


def two_input_model(path: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "y"], ["s"]), helper.make_node("Flatten", ["s"], ["logits"], axis=1)]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 2, 2]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 2, 2]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4])],
    )
    return _save(graph, path)


def no_class_output_model(path: Path) -> Path:
    """Two image-shaped outputs and no (N, classes) output."""
    nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"])]
    graph = helper.make_graph(
        nodes,
        "no_class_output",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 4, 4])],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 1, 4, 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 1, 4, 4]),
        ],
    )
    return _save(graph, path)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory with linear.onnx (1×8×8 → 3), rgb.onnx (3×8×8 → 3), nan.onnx and images."""
    linear_model(tmp_path / "linear.onnx")
    linear_model(tmp_path / "rgb.onnx", c=3)
    linear_model(tmp_path / "nan.onnx", bias=float("nan"))
    two_input_model(tmp_path / "two_inputs.onnx")
    no_class_output_model(tmp_path / "no_class.onnx")
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((20, 30, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / "b.jpg")
    np.save(tmp_path / "c.npy", rng.random((1, 8, 8)).astype(np.float32))
    np.save(tmp_path / "wrong.npy", rng.random((2, 8, 8)).astype(np.float32))
    (tmp_path / "notes.txt").write_text("not an image and not a model\n")
    (tmp_path / "fake.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "labels3.txt").write_text("cat\ndog\n<b>bird</b>\n")
    (tmp_path / "labels2.txt").write_text("cat\ndog\n")
    return tmp_path


@pytest.fixture
def run_cli(capsys):
    """Run ``main(argv)``; return (exit code, stdout, stderr)."""

    def run(*argv: str | Path) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def fail_on_call(monkeypatch):
    """``fail_on_call(cls, n)``: ``cls.explain`` raises RuntimeError("boom") on its n-th call; returns
    the original method (to put back with ``monkeypatch.setattr``)."""

    def patch(cls: type, n: int):
        original = cls.explain
        calls = {"n": 0}

        def flaky(self, model, x, target=None):
            calls["n"] += 1
            if calls["n"] == n:
                raise RuntimeError("boom")
            return original(self, model, x, target)

        monkeypatch.setattr(cls, "explain", flaky)
        return original

    return patch
