"""A torch module that evaluates a plain CNN ONNX graph, node by node, so gradients can flow.

For vendor models shipped only as ONNX: the white-box references need a torch module that is the
same function as the graph ONNX Runtime serves. :class:`OnnxGraphModule` walks the graph's nodes
in order (ONNX stores them topologically sorted) and maps each to a torch functional call; the
initializers become buffers. Only the operators plain image classifiers use are supported
(:data:`SUPPORTED_OPS`); anything else — or an attribute value this interpreter does not handle —
raises ``ValueError`` naming the node, rather than computing something else silently.

Check the result against ONNX Runtime (``scripts/build_real_cache.py`` does, to 1e-4).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Handler = Callable[["OnnxGraphModule", Any, list[torch.Tensor], dict[str, Any]], torch.Tensor]


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out: dict[str, Any] = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        out[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _spatial_pads(node: Any, attrs: dict[str, Any], rank: int) -> list[int]:
    """ONNX ``pads`` (begin…, end…) as ``F.pad``'s (last axis first) list; explicit pads only."""
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID"):
        raise ValueError(f"node {node.name!r} ({node.op_type}): auto_pad={auto_pad} is not supported.")
    pads = list(attrs.get("pads", [0] * (2 * rank))) if auto_pad == "NOTSET" else [0] * (2 * rank)
    begins, ends = pads[:rank], pads[rank:]
    out: list[int] = []
    for axis in reversed(range(rank)):
        out += [int(begins[axis]), int(ends[axis])]
    return out


def _conv(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    weight = x[1]
    rank = weight.ndim - 2
    if rank != 2:
        raise ValueError(f"node {node.name!r}: only 2-D convolutions are supported.")
    pad = _spatial_pads(node, a, rank)
    h = F.pad(x[0], pad) if any(pad) else x[0]
    bias = x[2] if len(x) > 2 else None
    return F.conv2d(
        h,
        weight,
        bias,
        stride=tuple(a.get("strides", [1, 1])),
        dilation=tuple(a.get("dilations", [1, 1])),
        groups=int(a.get("group", 1)),
    )


def _max_pool(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    if a.get("storage_order", 0) or len(node.output) > 1:
        raise ValueError(f"node {node.name!r}: MaxPool indices/storage_order are not supported.")
    pad = _spatial_pads(node, a, 2)
    h = F.pad(x[0], pad, value=float("-inf")) if any(pad) else x[0]
    return F.max_pool2d(
        h,
        tuple(a["kernel_shape"]),
        stride=tuple(a.get("strides", [1, 1])),
        dilation=tuple(a.get("dilations", [1, 1])),
        ceil_mode=bool(a.get("ceil_mode", 0)),
    )


def _avg_pool(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    pad = _spatial_pads(node, a, 2)
    if any(pad) and not a.get("count_include_pad", 0):
        raise ValueError(
            f"node {node.name!r}: padded AveragePool without count_include_pad is not supported."
        )
    h = F.pad(x[0], pad) if any(pad) else x[0]
    return F.avg_pool2d(
        h,
        tuple(a["kernel_shape"]),
        stride=tuple(a.get("strides", [1, 1])),
        ceil_mode=bool(a.get("ceil_mode", 0)),
    )


def _reshape(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    shape = [int(v) for v in x[1].tolist()]
    if a.get("allowzero", 0) and 0 in shape:
        raise ValueError(f"node {node.name!r}: Reshape with allowzero=1 is not supported.")
    shape = [x[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x[0].reshape(shape)


def _flatten(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    axis = int(a.get("axis", 1))
    return x[0].reshape(int(np.prod(x[0].shape[:axis])), -1) if axis else x[0].reshape(1, -1)


def _gemm(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    left = x[0].t() if a.get("transA", 0) else x[0]
    right = x[1].t() if a.get("transB", 0) else x[1]
    out = float(a.get("alpha", 1.0)) * (left @ right)
    if len(x) > 2:
        out = out + float(a.get("beta", 1.0)) * x[2]
    return out


def _softmax(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    default = -1 if self.opset >= 13 else 1
    axis = int(a.get("axis", default))
    if self.opset < 13 and axis != x[0].ndim - 1:
        raise ValueError(f"node {node.name!r}: Softmax before opset 13 over axes {axis}.. is not supported.")
    return torch.softmax(x[0], dim=axis)


def _batch_norm(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    return F.batch_norm(x[0], x[3], x[4], x[1], x[2], training=False, eps=float(a.get("epsilon", 1e-5)))


def _gather(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    index = x[1].long()
    if index.ndim != 1:
        raise ValueError(f"node {node.name!r}: only 1-D Gather indices are supported.")
    return torch.index_select(x[0], int(a.get("axis", 0)) % x[0].ndim, index)


def _clip(self: OnnxGraphModule, node: Any, x: list[torch.Tensor], a: dict[str, Any]) -> torch.Tensor:
    low = x[1] if len(x) > 1 and x[1] is not None else a.get("min")
    high = x[2] if len(x) > 2 and x[2] is not None else a.get("max")
    return torch.clamp(x[0], min=low, max=high)


OPS: dict[str, Handler] = {
    "Conv": _conv,
    "Relu": lambda self, n, x, a: F.relu(x[0]),
    "Add": lambda self, n, x, a: x[0] + x[1],
    "Sub": lambda self, n, x, a: x[0] - x[1],
    "Mul": lambda self, n, x, a: x[0] * x[1],
    "Div": lambda self, n, x, a: x[0] / x[1],
    "MatMul": lambda self, n, x, a: x[0] @ x[1],
    "Gemm": _gemm,
    "Transpose": lambda self, n, x, a: x[0].permute(*(a.get("perm") or reversed(range(x[0].ndim)))),
    "Reshape": _reshape,
    "Flatten": _flatten,
    "MaxPool": _max_pool,
    "AveragePool": _avg_pool,
    "GlobalAveragePool": lambda self, n, x, a: x[0].mean(dim=tuple(range(2, x[0].ndim)), keepdim=True),
    "Softmax": _softmax,
    "Identity": lambda self, n, x, a: x[0],
    "BatchNormalization": _batch_norm,
    "Gather": _gather,
    "Clip": _clip,
    "Concat": lambda self, n, x, a: torch.cat(x, dim=int(a["axis"])),
}
SUPPORTED_OPS = frozenset(OPS)


class OnnxGraphModule(nn.Module):
    """Evaluate a single-input, single-output ONNX graph with torch (float32, CPU or any device).

    Args:
        model: path of an ``.onnx`` file, its bytes, or an ``onnx.ModelProto``.
    """

    def __init__(self, model: str | os.PathLike[str] | bytes | Any) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        if isinstance(model, (str, os.PathLike)):
            proto = onnx.load(os.fspath(model))
        elif isinstance(model, bytes):
            proto = onnx.load_model_from_string(model)
        else:
            proto = model
        graph = proto.graph
        self.opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=1)
        unsupported = sorted({n.op_type for n in graph.node} - SUPPORTED_OPS)
        if unsupported:
            raise ValueError(f"the graph uses operators this interpreter does not support: {unsupported}.")
        constants = {init.name for init in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in constants]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ValueError(
                f"need one input and one output, got inputs {inputs} and {len(graph.output)} outputs."
            )
        self.input_name, self.output_name = inputs[0], graph.output[0].name
        self._buffer_of: dict[str, str] = {}
        for k, init in enumerate(graph.initializer):
            array = numpy_helper.to_array(init)
            tensor = torch.from_numpy(array.astype(np.float32) if array.dtype.kind == "f" else array.copy())
            self.register_buffer(f"c{k}", tensor)
            self._buffer_of[init.name] = f"c{k}"
        self._nodes: list[tuple[Any, dict[str, Any]]] = [(n, _attrs(n)) for n in graph.node]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {self.input_name: x}
        for name, buffer in self._buffer_of.items():
            values[name] = getattr(self, buffer)
        for node, attrs in self._nodes:
            args: list[Any] = [values[i] if i else None for i in node.input]
            values[node.output[0]] = OPS[node.op_type](self, node, args, attrs)
        return values[self.output_name]


class ToLayout(nn.Module):
    """Feed an NCHW batch to a module that takes ``layout`` (``"NHWC"`` permutes, ``"NCHW"`` passes)."""

    def __init__(self, module: nn.Module, layout: str = "NCHW") -> None:
        super().__init__()
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}.")
        self.module, self.layout = module, layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.permute(0, 2, 3, 1) if self.layout == "NHWC" else x)


def op_types(model: str | os.PathLike[str] | bytes) -> Sequence[str]:
    """The distinct operator types of a graph (to tell whether :class:`OnnxGraphModule` can run it)."""
    import onnx

    proto = (
        onnx.load(os.fspath(model))
        if isinstance(model, (str, os.PathLike))
        else onnx.load_model_from_string(model)
    )
    return sorted({n.op_type for n in proto.graph.node})
