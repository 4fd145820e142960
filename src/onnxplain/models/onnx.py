"""OnnxModel: an ONNX Runtime session seen as a QueryModel.

The adapter reads the graph's interface (:mod:`onnxplain.models._graph`: one image input, one
class-score output, their types, the head), opens a session on the chosen device, finds the best
batch size (:mod:`onnxplain.models.autobatch`, measured once per machine and cached) and forwards
chunks, converted to the graph's input type. Nothing here looks inside the model beyond its
declared inputs/outputs and the nodes that produce its output.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from onnxplain.checks import check_bool, check_choice, check_positive_int
from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.models import autobatch
from onnxplain.models._graph import GraphSpec, Layout, read_graph
from onnxplain.models._ort import (
    cuda_available,
    cuda_device_count,
    load_proto,
    open_session,
    ort_device,
    read_model_bytes,
)
from onnxplain.models.autobatch import confirm_rates, pick_batch_size
from onnxplain.models.base import BaseQueryModel, ChannelOrder, check_adapter_arguments
from onnxplain.models.heads import HEADS, Head, OutputHead, check_head_output
from onnxplain.models.inputs import Normalize, convert_input, input_quantum_of, torch_dtype_of

__all__ = [
    "OnnxModel",
    "confirm_rates",
    "cuda_available",
    "cuda_device_count",
    "ort_device",
    "pick_batch_size",
]


def torch_pad(tensor: Any, size: int) -> Any:
    """Zero-pad a torch tensor along the batch axis to ``size`` rows."""
    import torch

    return torch.cat([tensor, tensor.new_zeros((size - tensor.shape[0], *tensor.shape[1:]))])


class _StaticIO:
    """One IO binding reused for every chunk of one shape (public ONNX Runtime API only).

    The input lives in one fixed buffer on the model's device and the output lands in another:
    the same addresses on every run, which is what CUDA graphs require (ONNX Runtime captures the
    graph on the first run and replays it). The input buffer is a torch tensor bound by its data
    pointer (``IOBinding.bind_input``) when torch is in use, so host arrays and device tensors are
    both copied into it; without torch it is an ``OrtValue`` written with ``update_inplace``. On
    CPU the very same code runs on host buffers.
    """

    def __init__(self, model: OnnxModel, shape: tuple[int, ...], use_torch: bool) -> None:
        import onnxruntime as ort

        device, index, dtype = model.device_type, model.device_id, model.input_dtype
        self.session = model.session
        self.binding = model.session.io_binding()
        self.tensor: Any = None
        self.value: Any = None
        if use_torch:
            import torch

            where = torch.device("cuda", index) if device == "cuda" else torch.device("cpu")
            self.tensor = torch.empty(shape, dtype=torch_dtype_of(dtype), device=where)
            self.binding.bind_input(model.input_name, device, index, dtype, list(shape), self.tensor.data_ptr())
        else:
            self.value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, device, index)
            self.binding.bind_ortvalue_input(model.input_name, self.value)
        spec = model.graph
        if spec.output_sample is not None:
            out_shape = [shape[0], *spec.output_sample]
            self.output = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, spec.output_dtype, device, index)
            self.binding.bind_ortvalue_output(spec.output_name, self.output)
        else:
            self.binding.bind_output(spec.output_name, device, index)

    def run(self, chunk: Any) -> np.ndarray:
        """Copy ``chunk`` (already of the input's type and shape) into the buffer and run."""
        if self.tensor is not None:
            if isinstance(chunk, np.ndarray):
                import torch

                chunk = torch.from_numpy(chunk)
            self.tensor.copy_(chunk)
        else:
            self.value.update_inplace(chunk)
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()[0]


class OnnxModel(BaseQueryModel):
    """A classifier served by ONNX Runtime, queried as ``model(batch) -> (N, num_classes)``.

    Args:
        model: path of an ``.onnx`` file, or its bytes.
        output: ``"probs"``, ``"logits"`` or ``"raw"``: what the explainers see of the head
            (:mod:`onnxplain.models.heads`; a softmax head is never softmaxed twice, a sigmoid
            head never softmaxed at all).
        device: ``"auto"`` (CUDA when it really works, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:i"``.
        batch_size: chunk size, or ``"auto"`` to measure the best throughput on first use
            (bigger is not better on CPU), cached on disk per model and machine
            (:mod:`onnxplain.models.autobatch`). A graph with a fixed batch dimension uses that
            size, padding the last chunk; on CUDA every chunk is padded to one fixed shape so
            cuDNN keeps its tuned algorithms.
        preprocess: :class:`~onnxplain.models.inputs.Normalize` applied to [0,1] pixels before the
            graph, for models that expect normalised input (mean/std in the model's channel order).
        layout: ``"NCHW"`` or ``"NHWC"`` (the graph's layout; explainers always work in CHW).
        max_queries: budget of samples (see :class:`~onnxplain.models.base.BaseQueryModel`).
        input_shape: one sample's (C,H,W), required only when the graph leaves it dynamic.
        intra_op_threads: CPU threads per call; ``None`` lets ONNX Runtime use the physical cores.
        io_binding: reuse one IO binding per chunk shape, with fixed device buffers and every
            chunk padded to one shape (default: on CUDA). ``True`` on CPU runs the same code
            path, which is how the CUDA logic is tested on machines without a GPU.
        cuda_graph: capture the model as a CUDA graph and replay it for every chunk (CUDA only;
            needs every node on the CUDA provider and fixed shapes, which IO binding provides).
        channel_order: ``"RGB"`` or ``"BGR"`` (the model's; explicands and maps stay RGB).
        head: ``"auto"`` (read from the graph: what produces the output) or a declared
            ``"softmax"``, ``"logsoftmax"``, ``"sigmoid"``, ``"logits"``.

    The graph's input may be float32, float16, float64 or uint8: every chunk of [0,1] float32
    pixels is converted (:func:`~onnxplain.models.inputs.convert_input`; uint8 = round(255·x)
    clipped), and float16 outputs become float32 before the head. ``input_quantum`` is the
    smallest pixel change a uint8 model can see (1/255), so explainers can warn about smaller
    perturbations. :meth:`describe` records every decision.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        *,
        output: OutputHead = "probs",
        device: str = "auto",
        batch_size: int | Literal["auto"] = "auto",
        preprocess: Normalize | None = None,
        layout: Layout = "NCHW",
        max_queries: int | None = None,
        input_shape: Sequence[int] | None = None,
        intra_op_threads: int | None = None,
        io_binding: bool | None = None,
        cuda_graph: bool = False,
        channel_order: ChannelOrder = "RGB",
        head: Head | Literal["auto"] = "auto",
    ) -> None:
        if not isinstance(model, (str, os.PathLike, bytes, bytearray, memoryview)):
            raise InvalidInputError(f"model must be the path of an .onnx file or its bytes, not {type(model).__name__}.")
        check_choice("layout", layout, ("NCHW", "NHWC"))
        check_choice("head", head, ("auto", *HEADS))
        if not (isinstance(batch_size, str) and batch_size == "auto"):
            check_positive_int("batch_size", batch_size)
        check_adapter_arguments(
            input_shape=input_shape, output=output, max_queries=max_queries, preprocess=preprocess, channel_order=channel_order
        )
        if intra_op_threads is not None:
            check_positive_int("intra_op_threads", intra_op_threads, 0)
        cuda_graph = check_bool("cuda_graph", cuda_graph)
        self.device_type, self.device_id = ort_device(device)
        self.io_binding = self.device_type == "cuda" if io_binding is None else check_bool("io_binding", io_binding)
        if cuda_graph and (self.device_type != "cuda" or not self.io_binding):
            raise InvalidInputError("cuda_graph=True needs a CUDA device and IO binding.")
        self.cuda_graph = cuda_graph
        self._static: dict[tuple[int, ...], _StaticIO] = {}
        raw, self.source = read_model_bytes(model)
        self.graph: GraphSpec = read_graph(load_proto(raw, self.source), self.source, layout, input_shape)
        self._set_head(head, output)
        self._set_input_type(preprocess)
        self.intra_op_threads = int(intra_op_threads or 0)
        self.session = open_session(raw, self.source, (self.device_type, self.device_id), intra_op_threads, cuda_graph)
        self.device = "cpu" if self.device_type == "cpu" else f"cuda:{self.device_id}"
        self.uses_host_cpu = self.device_type == "cpu"
        self._digest = hashlib.sha1(raw).hexdigest()
        self.batch_from = "given" if batch_size != "auto" else "auto: not measured yet"
        super().__init__(
            self.graph.sample_shape,
            self.graph.num_classes or 1,
            output=output,
            batch_size=None if batch_size == "auto" else int(batch_size),
            max_queries=max_queries,
            preprocess=preprocess,
            channel_order=channel_order,
        )
        self.auto_batch = batch_size == "auto"
        if self.graph.num_classes is None:
            probe = self._forward(np.zeros((self.fixed_batch or 1, *self.input_shape), np.float32))
            self.num_classes = int(np.asarray(probe).reshape(self.fixed_batch or 1, -1).shape[1])
        if self.num_classes < 2 and self.output == "probs" and self.head == "logits":
            raise ModelLoadError(
                f"{self.source} returns {self.num_classes} score per sample; a softmax ('probs') needs ≥ 2 classes."
            )

    def _set_head(self, head: Head | Literal["auto"], output: OutputHead) -> None:
        """The head: declared, or read from the graph; ``output="probs"`` on an unknown one is refused."""
        spec = self.graph
        if head != "auto":
            self.head, self.head_source = head, "declared"
            return
        self.head = spec.head
        self.head_source = f"graph: output {spec.output_name!r} is produced by {spec.head_op}"
        check_head_output(spec.head, output, self.source, f"output {spec.output_name!r} (produced by {spec.head_op})")

    def _set_input_type(self, preprocess: Normalize | None) -> None:
        self.input_dtype = self.graph.input_dtype
        self.input_quantum = input_quantum_of(self.input_dtype)
        if self.input_dtype == np.uint8 and preprocess is not None:
            raise InvalidInputError(
                f"{self.source} takes uint8 grey levels (0..255), so its normalisation is inside the graph; "
                "drop preprocess=Normalize(...)."
            )

    # -- the graph's interface ----------------------------------------------------------------------
    @property
    def input_name(self) -> str:
        return self.graph.input_name

    @property
    def output_name(self) -> str:
        return self.graph.output_name

    @property
    def layout(self) -> str:  # type: ignore[override]
        return self.graph.layout

    @property
    def fixed_batch(self) -> int | None:
        """The graph's fixed batch size (None when the batch axis is dynamic)."""
        return self.graph.fixed_batch

    @property
    def metadata(self) -> dict[str, str]:
        return self.graph.metadata

    @property
    def labels(self) -> list[str] | None:
        """Class names stored in the model's metadata by ``onnxplain export`` (if any)."""
        return self.graph.labels

    # -- batching -------------------------------------------------------------------------------
    def _chunk_size(self) -> int:
        if self.fixed_batch is not None:
            return self.fixed_batch
        if self.batch_size is None:
            self.batch_size = self._auto_batch_size()
        return self.batch_size

    def best_batch_size(self) -> int:
        return self._chunk_size()

    def batch_size_source(self) -> str:
        return "fixed by the graph's batch axis" if self.fixed_batch is not None else self.batch_from

    def probe_key(self) -> str:
        """What the measured batch size depends on (:func:`onnxplain.models.autobatch.cache_key`)."""
        provider = "CUDAExecutionProvider" if self.device_type == "cuda" else "CPUExecutionProvider"
        return autobatch.cache_key(
            model=self._digest,
            device=self.device,
            provider=provider,
            threads=self.intra_op_threads,
            layout=self.layout,
            input_shape=list(self.input_shape),
            input_dtype=self.input_dtype.name,
            io_binding=self.io_binding,
            cuda_graph=self.cuda_graph,
        )

    def _auto_batch_size(self) -> int:
        """The cached best size for this model and machine, else measured (:func:`autobatch.probe`)."""
        key = self.probe_key()
        cached = autobatch.lookup(key)
        if cached is not None:
            self.batch_from = "auto: read from the cache"
            return cached
        rng = np.random.default_rng(0)
        pool = np.empty((0, *self.input_shape), np.float32)

        def make_chunk(size: int) -> Any:
            nonlocal pool
            if size > len(pool):
                pool = np.concatenate([pool, rng.random((size - len(pool), *self.input_shape), dtype=np.float32)])
            return self.prepare_chunk(pool[:size])

        sample_bytes = int(np.prod(self.input_shape)) * 4
        result = autobatch.probe(self._forward, make_chunk, sample_bytes)
        best = pick_batch_size(result.rates)
        self._static.clear()  # buffers of the candidate sizes
        autobatch.store(key, best, result.spent())
        self.batch_from = f"auto: measured ({result.spent():.2f} s, {len(result.rates)} sizes)"
        return best

    # -- forwarding -----------------------------------------------------------------------------
    def _forward(self, chunk: Any) -> np.ndarray:
        """One prepared chunk, padded to the fixed chunk shape when the batch axis is fixed or
        IO-bound, converted to the graph's layout and input type; (n, K) scores (float16 → float32).

        ``chunk`` is a numpy array or a torch tensor on the model's device (device-side
        perturbations); only the scores come back to the host.
        """
        n = int(chunk.shape[0])
        pad_to = self.fixed_batch or (self.batch_size if self.io_binding else None)
        numpy_input = isinstance(chunk, np.ndarray)
        if not numpy_input and (chunk.device.type == "cuda") != (self.device_type == "cuda"):
            raise InvalidInputError(f"a tensor on {chunk.device} was given to a model on {self.device}.")
        if pad_to and n < pad_to:
            if numpy_input:
                chunk = np.concatenate([chunk, np.zeros((pad_to - n, *chunk.shape[1:]), chunk.dtype)])
            else:
                chunk = torch_pad(chunk, pad_to)
        if self.layout == "NHWC":
            chunk = chunk.transpose(0, 2, 3, 1) if numpy_input else chunk.permute(0, 2, 3, 1)
        if not numpy_input and not self.io_binding:
            chunk, numpy_input = chunk.detach().cpu().numpy(), True
        chunk = convert_input(chunk, self.input_dtype)
        if self.io_binding:
            shape = tuple(int(d) for d in chunk.shape)
            static = self._static.get(shape)
            if static is None or (static.tensor is None and not numpy_input):
                use_torch = not numpy_input or self.cuda_graph or "torch" in sys.modules
                static = self._static[shape] = _StaticIO(self, shape, use_torch)
            out = static.run(chunk)
        else:
            out = self.session.run([self.output_name], {self.input_name: chunk})[0]
        out = np.asarray(out)
        if out.dtype == np.float16:
            out = out.astype(np.float32)
        return out.reshape(out.shape[0], -1)[:n]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "output_name": self.output_name,
            "output_dtype": self.graph.output_dtype.name
            + (" (converted to float32 before the head)" if self.graph.output_dtype == np.float16 else ""),
            "threads": self.intra_op_threads or "onnxruntime default",
            "io_binding": self.io_binding,
        }

    def __repr__(self) -> str:
        return (
            f"OnnxModel({self.source!r}, input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"device={self.device!r}, output={self.output!r})"
        )
