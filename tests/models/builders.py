"""Tiny ONNX graphs built with onnx.helper for the model-adapter tests (IR 10, opset 18: onnx 1.23
writes IR 14 by default, which ONNX Runtime 1.31 cannot read)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save_model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def linear_model(
    weight: np.ndarray,
    input_shape: tuple[int, ...],
    *,
    batch: int | str = "N",
    final: str | None = None,
    layout: str = "NCHW",
) -> bytes:
    """scores = flatten(x) @ weight (+ an optional final op: Softmax, LogSoftmax, Sigmoid, Exp, ...); weight (D, K)."""
    d, k = weight.shape
    dims = list(input_shape)
    if layout == "NHWC":
        dims = [dims[1], dims[2], dims[0]]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *dims])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, k])
    nodes = []
    flat_in = "x"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]))
        flat_in = "xt"
    nodes.append(helper.make_node("Flatten", [flat_in], ["flat"], axis=1))
    nodes.append(helper.make_node("MatMul", ["flat", "W"], ["scores" if final else "y"]))
    if final:
        attrs = {"axis": -1} if final in ("Softmax", "LogSoftmax") else {}
        nodes.append(helper.make_node(final, ["scores"], ["y"], **attrs))
    init = [numpy_helper.from_array(weight.astype(np.float32), "W")]
    return save_model(helper.make_graph(nodes, "linear", [x], [y], init))


def two_input_model() -> bytes:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    return save_model(helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", [a, b], [y]))


def log_model(input_shape: tuple[int, ...], k: int) -> bytes:
    """y = Log(flatten(x)[:, :k]): NaN for negative inputs (for the non-finite check)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k])
    starts = numpy_helper.from_array(np.array([0], np.int64), "starts")
    ends = numpy_helper.from_array(np.array([k], np.int64), "ends")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["head"]),
        helper.make_node("Log", ["head"], ["y"]),
    ]
    return save_model(helper.make_graph(nodes, "log", [x], [y], [starts, ends, axes]))


def feature_map_model(input_shape: tuple[int, ...]) -> bytes:
    """y = x: a (N, C, H, W) output, which is not a class-score vector."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *input_shape])
    return save_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "fmap", [x], [y]))


def uint8_linear_model(weight: np.ndarray, input_shape: tuple[int, ...]) -> bytes:
    """A vendor-style uint8 model: scores = flatten(Cast(x) / 255) @ weight, x in 0..255."""
    d, k = weight.shape
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", *input_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k])
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xf", "scale"], ["xs"]),
        helper.make_node("Flatten", ["xs"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["y"]),
    ]
    init = [
        numpy_helper.from_array(weight.astype(np.float32), "W"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"),
    ]
    return save_model(helper.make_graph(nodes, "uint8_linear", [x], [y], init))


def float16_linear_model(weight: np.ndarray, input_shape: tuple[int, ...]) -> bytes:
    """A half-precision model: float16 in, float16 weights, float16 scores out."""
    d, k = weight.shape
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["N", *input_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", k])
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "W"], ["y"])]
    init = [numpy_helper.from_array(weight.astype(np.float16), "W")]
    return save_model(helper.make_graph(nodes, "float16_linear", [x], [y], init))


def written_softmax_model(weight: np.ndarray, input_shape: tuple[int, ...]) -> bytes:
    """softmax written out as Exp / ReduceSum(Exp) (as some converters emit it)."""
    d, k = weight.shape
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k])
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["z"]),
        helper.make_node("Exp", ["z"], ["e"]),
        helper.make_node("ReduceSum", ["e", "axes"], ["total"], keepdims=1),
        helper.make_node("Div", ["e", "total"], ["y"]),
    ]
    init = [numpy_helper.from_array(weight.astype(np.float32), "W"), numpy_helper.from_array(np.array([1]), "axes")]
    return save_model(helper.make_graph(nodes, "written_softmax", [x], [y], init))


def qdq_softmax_model(weight: np.ndarray, input_shape: tuple[int, ...]) -> bytes:
    """A Softmax whose output goes through QuantizeLinear/DequantizeLinear (a QDQ graph's ending)."""
    d, k = weight.shape
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", k])
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["z"]),
        helper.make_node("Softmax", ["z"], ["p"], axis=-1),
        helper.make_node("QuantizeLinear", ["p", "s", "zp"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"]),
    ]
    init = [
        numpy_helper.from_array(weight.astype(np.float32), "W"),
        numpy_helper.from_array(np.array(1 / 255, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.uint8), "zp"),
    ]
    return save_model(helper.make_graph(nodes, "qdq_softmax", [x], [y], init))


def int32_input_model() -> bytes:
    """An input type onnxplain does not feed (int32)."""
    x = helper.make_tensor_value_info("x", TensorProto.INT32, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)]
    return save_model(helper.make_graph(nodes, "int32", [x], [y]))
