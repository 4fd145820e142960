"""Reading an ONNX classifier's interface: which input and output, their shapes and types, and
what the output ends in (its head).

Nothing here runs the model or looks at weights: only the graph's declared inputs/outputs and
the chain of nodes that produces the chosen output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.models.heads import Head
from onnxplain.models.inputs import INPUT_DTYPES

Layout = Literal["NCHW", "NHWC"]
Dim = int | str | None

# Ops that pass their first input's meaning through (reshapes, casts, quantise/dequantise pairs):
# the head detection looks through them backwards.
TRANSPARENT_OPS = frozenset(
    {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast", "Dropout", "QuantizeLinear", "DequantizeLinear"}
)
# Ops that end a classifier in probabilities (or their logarithm).
PROBABILITY_OPS: dict[str, Head] = {
    "Softmax": "softmax",
    "LogSoftmax": "logsoftmax",
    "Sigmoid": "sigmoid",
    "HardSigmoid": "sigmoid",
}
# Ops whose output is plausibly a classifier's logits: linear layers (float and quantised),
# affine arithmetic (bias, temperature), normalisation, pooling/reductions of class maps
# (SqueezeNet-style heads), ReLU before such pooling, and tensor plumbing.
LOGIT_OPS = frozenset(
    {
        "Gemm", "MatMul", "MatMulInteger", "QGemm", "QLinearMatMul", "Einsum", "Conv", "ConvInteger",
        "QLinearConv", "ConvTranspose", "Add", "Sub", "Mul", "Div", "Neg", "Sum", "Mean",
        "BatchNormalization", "LayerNormalization", "InstanceNormalization", "GlobalAveragePool",
        "AveragePool", "GlobalMaxPool", "MaxPool", "ReduceMean", "ReduceSum", "ReduceMax",
        "QLinearGlobalAveragePool", "QLinearAdd", "QLinearMul", "Relu", "LeakyRelu", "PRelu",
        "Concat", "Gather", "GatherElements", "Slice", "Split", "Transpose", "Expand", "Tile", "Pad",
    }
)  # fmt: skip


@dataclass(frozen=True)
class GraphSpec:
    """What an ONNX classifier takes and returns, read from its graph.

    ``sample_shape`` is one sample in the explainers' CHW order (whatever ``layout``);
    ``output_sample`` the output's non-batch dims when static; ``head`` and ``head_op`` what the
    output is produced by (``head_op`` names the node, for messages and ``describe()``).
    """

    input_name: str
    input_dtype: np.dtype
    input_dims: tuple[Dim, ...]
    fixed_batch: int | None
    sample_shape: tuple[int, ...]
    layout: Layout
    output_name: str
    output_dtype: np.dtype
    output_sample: tuple[int, ...] | None
    num_classes: int | None
    head: Head
    head_op: str
    metadata: dict[str, str]

    @property
    def labels(self) -> list[str] | None:
        """Class names stored in the model's metadata by ``onnxplain export`` (if any)."""
        text = self.metadata.get("labels")
        if not text:
            return None
        try:
            labels = json.loads(text)
        except json.JSONDecodeError:
            return None
        return [str(v) for v in labels] if isinstance(labels, list) else None


def dims(value_info: Any) -> tuple[Dim, ...]:
    """A value's declared dims: ints, symbolic names, or None where nothing is declared."""
    out: list[Dim] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return tuple(out)


def _elem_dtype(value_info: Any) -> np.dtype | None:
    import onnx

    elem = value_info.type.tensor_type.elem_type
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)) if elem else None


def read_graph(
    proto: Any, source: str, layout: Layout = "NCHW", input_shape: Sequence[int] | None = None
) -> GraphSpec:
    """The :class:`GraphSpec` of a loaded ``onnx.ModelProto``; :class:`ModelLoadError` with one
    sentence when the graph is not a one-image-input, one-score-output classifier."""
    if not proto.graph.node and not proto.graph.output:
        raise ModelLoadError(f"{source} is not an ONNX model (no graph).")
    graph_input = _choose_input(proto.graph, source)
    input_dtype = _input_dtype(graph_input, source)
    input_dims = dims(graph_input)
    fixed_batch, sample_shape = _sample_shape(graph_input.name, input_dims, layout, input_shape, source)
    chosen = _choose_output(proto.graph, source)
    out_dims = dims(chosen)[1:]
    out_sample = tuple(out_dims) if all(isinstance(d, int) and d > 0 for d in out_dims) else None
    last = dims(chosen)[-1] if dims(chosen) else None
    head, head_op = output_head(proto.graph, chosen.name)
    return GraphSpec(
        input_name=graph_input.name,
        input_dtype=input_dtype,
        input_dims=input_dims,
        fixed_batch=fixed_batch,
        sample_shape=sample_shape,
        layout=layout,
        output_name=chosen.name,
        output_dtype=_elem_dtype(chosen) or np.dtype(np.float32),
        output_sample=out_sample,  # type: ignore[arg-type]
        num_classes=last if isinstance(last, int) and last > 0 else None,
        head=head,
        head_op=head_op,
        metadata={p.key: p.value for p in proto.metadata_props},
    )


def _choose_input(graph: Any, source: str) -> Any:
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise ModelLoadError(
            f"{source} has {len(inputs)} inputs ({names}); onnxplain needs exactly one image input."
        )
    return inputs[0]


def _input_dtype(graph_input: Any, source: str) -> np.dtype:
    dtype = _elem_dtype(graph_input)
    if dtype is None or dtype.name not in INPUT_DTYPES:
        raise ModelLoadError(
            f"{source}: input {graph_input.name!r} is {dtype}; onnxplain feeds "
            f"{', '.join(INPUT_DTYPES)} inputs."
        )
    return dtype


def _sample_shape(
    name: str, input_dims: tuple[Dim, ...], layout: Layout, input_shape: Sequence[int] | None, source: str
) -> tuple[int | None, tuple[int, ...]]:
    """(fixed batch size or None, one sample's CHW shape) from the input's dims and ``input_shape``."""
    if len(input_dims) < 2:
        raise ModelLoadError(f"{source}: input {name!r} has rank {len(input_dims)}; need a batch axis.")
    first = input_dims[0]
    fixed_batch = first if isinstance(first, int) and first > 0 else None
    sample = list(input_dims[1:])
    if layout == "NHWC":
        if len(sample) != 3:
            raise ModelLoadError(f"{source}: layout NHWC needs a rank-4 input, got rank {len(input_dims)}.")
        sample = [sample[2], sample[0], sample[1]]
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != len(sample) or any(
            isinstance(d, int) and d > 0 and d != s for d, s in zip(sample, shape, strict=True)
        ):
            raise InvalidInputError(f"input_shape {shape} does not fit the graph's input {list(input_dims)} ({layout}).")
        return fixed_batch, shape
    if all(isinstance(d, int) and d > 0 for d in sample):
        return fixed_batch, tuple(int(d) for d in sample)  # type: ignore[arg-type]
    raise ModelLoadError(
        f"{source}: input {name!r} has dynamic sample dims {list(input_dims[1:])}; pass input_shape=(C, H, W)."
    )


def _choose_output(graph: Any, source: str) -> Any:
    outputs = list(graph.output)
    scored = [o for o in outputs if len(dims(o)) == 2]
    if len(outputs) == 1:
        chosen = outputs[0]
    elif len(scored) == 1:
        chosen = scored[0]
    else:
        names = ", ".join(o.name for o in outputs) or "none"
        raise ModelLoadError(
            f"{source} has outputs ({names}); onnxplain needs one (N, num_classes) class-score output."
        )
    rank_dims = dims(chosen)
    squeezable = len(rank_dims) > 2 and all(d == 1 for d in rank_dims[2:])  # e.g. (N, K, 1, 1)
    if rank_dims and len(rank_dims) != 2 and not squeezable:
        raise ModelLoadError(
            f"{source}: output {chosen.name!r} has shape {list(rank_dims)}; onnxplain needs one "
            "(N, num_classes) class-score output."
        )
    return chosen


def output_head(graph: Any, output_name: str) -> tuple[Head, str]:
    """``(head, op)``: what produces the output, looking back through :data:`TRANSPARENT_OPS`.

    Softmax / LogSoftmax / Sigmoid (and HardSigmoid) give their heads; ``Div`` of an ``Exp`` is a
    hand-written softmax; an op of :data:`LOGIT_OPS` gives ``"logits"``; anything else (``Exp``,
    ``Clip``, ``Abs``, a custom op, an output fed straight from the input) is ``"unknown"``.
    """
    producers = {out: node for node in graph.node for out in node.output}
    name = output_name
    for _ in range(32):
        node = producers.get(name)
        if node is None:
            return "unknown", "no node (the output is a graph input or constant)"
        if node.op_type in PROBABILITY_OPS:
            return PROBABILITY_OPS[node.op_type], node.op_type
        if node.op_type == "Div" and node.input and getattr(producers.get(node.input[0]), "op_type", "") == "Exp":
            return "softmax", "Div of an Exp (a written-out softmax)"
        if node.op_type in LOGIT_OPS:
            return "logits", node.op_type
        if node.op_type not in TRANSPARENT_OPS or not node.input:
            return "unknown", node.op_type
        name = node.input[0]
    return "unknown", "a chain of reshapes longer than 32 nodes"
