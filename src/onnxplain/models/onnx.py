"""OnnxModel: an ONNX Runtime session seen as a QueryModel.

The adapter reads the graph (one image input, one class-score output), picks the device, finds
the best batch size by measuring, and forwards chunks. Nothing here looks inside the model beyond
its declared inputs/outputs and whether its output node is a Softmax.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from onnxplain.devices import parse_device
from onnxplain.errors import DeviceUnavailableError, InvalidInputError, ModelLoadError
from onnxplain.models.base import BaseQueryModel, Normalize, OutputHead

Layout = Literal["NCHW", "NHWC"]

# Chunk sizes tried by batch_size="auto", and the cap on one chunk's input bytes.
_AUTO_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_AUTO_MAX_CHUNK_BYTES = 256 * 2**20
_AUTO_MIN_CALLS = 1
# batch_size="auto" keeps the largest size whose throughput is within this share of the best.
_AUTO_TOLERANCE = 0.05
# The sweep stops after two sizes in a row this much slower than the best so far.
_AUTO_STALL_MARGIN = 0.2
_AUTO_SECONDS_PER_CANDIDATE = 0.05
_AUTO_MAX_SECONDS_PER_CANDIDATE = 1.0
_AUTO_MAX_CALL_SECONDS = 0.5
# Sizes within this share of the sweep's best are re-measured in interleaved rounds.
_AUTO_FINALIST_MARGIN = 0.3
_AUTO_CONFIRM_ROUNDS = 3
_AUTO_CONFIRM_SECONDS = 0.02
# Best batch sizes measured so far, keyed by (model digest, device, threads, layout).
_BEST_BATCH_CACHE: dict[tuple[str, str, int, str], int] = {}

# Ops that leave a Softmax's output a probability vector (we look through them backwards).
_TRANSPARENT_OPS = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Cast"}

_ORT_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of CUDA devices the driver reports (0 without a driver), without touching ORT."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return int(count.value)
    return 0


def cuda_available() -> bool:
    """True when a CUDA device exists and this onnxruntime build has the CUDA provider."""
    import onnxruntime as ort

    return cuda_device_count() > 0 and "CUDAExecutionProvider" in ort.get_available_providers()


def ort_device(device: str) -> tuple[str, int]:
    """``"auto"|"cpu"|"cuda"|"cuda:i"`` → ``("cpu"|"cuda", index)``; auto picks CUDA only when usable."""
    spec = parse_device(device)
    if spec.kind == "auto":
        return ("cuda", 0) if cuda_available() else ("cpu", 0)
    if spec.kind == "cpu":
        return "cpu", 0
    index = spec.index or 0
    if not cuda_available():
        raise DeviceUnavailableError(
            f"device {device!r} was requested but CUDA is not available on this machine "
            "(no CUDA device, or onnxruntime-gpu is not installed); use --device cpu."
        )
    if index >= cuda_device_count():
        raise DeviceUnavailableError(f"device {device!r} does not exist: {cuda_device_count()} CUDA device(s).")
    return "cuda", index


def _read_model_bytes(model: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "<bytes>"
    path = Path(model)
    if not path.exists():
        raise ModelLoadError(f"model file {str(path)!r} does not exist.")
    if not path.is_file():
        raise ModelLoadError(f"model path {str(path)!r} is not a file.")
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {str(path)!r}: {exc.strerror or exc}.") from exc


def _dims(value_info: Any) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for d in value_info.type.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def _ends_in(graph: Any, output_name: str) -> str | None:
    """``"softmax"`` / ``"logsoftmax"`` when the output is produced by one (through reshapes)."""
    producers = {out: node for node in graph.node for out in node.output}
    name = output_name
    for _ in range(16):
        node = producers.get(name)
        if node is None:
            return None
        if node.op_type == "Softmax":
            return "softmax"
        if node.op_type == "LogSoftmax":
            return "logsoftmax"
        if node.op_type not in _TRANSPARENT_OPS or not node.input:
            return None
        name = node.input[0]
    return None


def pick_batch_size(rates: dict[int, float], tolerance: float = _AUTO_TOLERANCE) -> int:
    """The largest batch size whose throughput (samples/s) is within ``tolerance`` of the best."""
    best_rate = max(rates.values())
    return max(size for size, rate in rates.items() if rate >= (1 - tolerance) * best_rate)


def confirm_rates(sizes: Sequence[int], rate_of: Callable[[int], float], rounds: int) -> dict[int, float]:
    """Re-measure ``sizes`` in ``rounds`` interleaved rounds (order reversed every other round);
    returns each size's median rate.

    A sequential sweep measures each size once, at a different moment: on a shared machine whose
    speed drifts by ±20 % within a second, it favours whichever sizes ran in a fast spell.
    Interleaving exposes every size to the same spells.
    """
    order = list(sizes)
    samples: dict[int, list[float]] = {size: [] for size in order}
    for r in range(rounds):
        for size in order if r % 2 == 0 else order[::-1]:
            samples[size].append(rate_of(size))
    return {size: float(np.median(values)) for size, values in samples.items()}


def torch_pad(tensor: Any, size: int) -> Any:
    """Zero-pad a torch tensor along the batch axis to ``size`` rows."""
    import torch

    return torch.cat([tensor, tensor.new_zeros((size - tensor.shape[0], *tensor.shape[1:]))])


class _StaticIO:
    """One IO binding reused for every chunk of one shape.

    Inputs are written into a fixed buffer on the model's device (``update_inplace`` from the
    host, or a device-to-device copy from a torch tensor) and outputs land in a fixed buffer:
    the same addresses on every run, which is what CUDA graphs require (ONNX Runtime captures
    the graph on the first run and replays it). On CPU the very same code runs on host buffers.
    """

    def __init__(self, model: OnnxModel, shape: tuple[int, ...]) -> None:
        import onnxruntime as ort

        device, index = model.device_type, model.device_id
        self.session = model.session
        self.input = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), model.input_dtype.type, device, index)
        self.binding = model.session.io_binding()
        self.binding.bind_ortvalue_input(model.input_name, self.input)
        if model._output_sample is not None:
            out_shape = [shape[0], *model._output_sample]
            self.output = ort.OrtValue.ortvalue_from_shape_and_type(
                out_shape, model._output_dtype.type, device, index
            )
            self.binding.bind_ortvalue_output(model.output_name, self.output)
        else:
            self.binding.bind_output(model.output_name, device, index)
        self._view: Any = None

    def run(self, chunk: Any) -> np.ndarray:
        if isinstance(chunk, np.ndarray):
            self.input.update_inplace(chunk)
        else:
            if self._view is None:
                from torch.utils.dlpack import from_dlpack

                self._view = from_dlpack(self.input._ortvalue.to_dlpack())
            self._view.copy_(chunk)
        self.session.run_with_iobinding(self.binding)
        return self.binding.copy_outputs_to_cpu()[0]


class OnnxModel(BaseQueryModel):
    """A classifier served by ONNX Runtime, queried as ``model(batch) -> (N, num_classes)``.

    Args:
        model: path of an ``.onnx`` file, or its bytes.
        output: ``"probs"`` (softmax unless the graph already ends in Softmax), ``"logits"``, ``"raw"``.
        device: ``"auto"`` (CUDA when it really works, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:i"``.
        batch_size: chunk size, or ``"auto"`` to measure the best throughput on first use
            (bigger is not better on CPU). A graph with a fixed batch dimension uses that size,
            padding the last chunk; on CUDA every chunk is padded to one fixed shape so cuDNN keeps
            its tuned algorithms.
        preprocess: :class:`~onnxplain.models.base.Normalize` applied to [0,1] pixels before the
            graph, for models that expect normalised input.
        layout: ``"NCHW"`` or ``"NHWC"`` (the graph's layout; explainers always work in CHW).
        max_queries: budget of samples (see :class:`~onnxplain.models.base.BaseQueryModel`).
        input_shape: one sample's (C,H,W), required only when the graph leaves it dynamic.
        intra_op_threads: CPU threads per call; ``None`` lets ONNX Runtime use the physical cores.
        io_binding: reuse one IO binding per chunk shape, with fixed device buffers and every
            chunk padded to one shape (default: on CUDA). ``True`` on CPU runs the same code
            path, which is how the CUDA logic is tested on machines without a GPU.
        cuda_graph: capture the model as a CUDA graph and replay it for every chunk (CUDA only;
            needs every node on the CUDA provider and fixed shapes, which IO binding provides).
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
    ) -> None:
        import onnx
        import onnxruntime as ort

        if layout not in ("NCHW", "NHWC"):
            raise InvalidInputError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}.")
        if batch_size != "auto" and not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
            raise InvalidInputError(f"batch_size must be 'auto' or a positive integer, got {batch_size!r}.")
        self.device_type, self.device_id = ort_device(device)
        self.io_binding = self.device_type == "cuda" if io_binding is None else bool(io_binding)
        if cuda_graph and (self.device_type != "cuda" or not self.io_binding):
            raise InvalidInputError("cuda_graph=True needs a CUDA device and IO binding.")
        self.cuda_graph = cuda_graph
        self._static: dict[tuple[int, ...], _StaticIO] = {}
        raw, self.source = _read_model_bytes(model)
        try:
            proto = onnx.load_model_from_string(raw)
        except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ...
            raise ModelLoadError(f"{self.source} is not an ONNX model ({type(exc).__name__}).") from exc
        if not proto.graph.node and not proto.graph.output:
            raise ModelLoadError(f"{self.source} is not an ONNX model (no graph).")
        self.metadata = {p.key: p.value for p in proto.metadata_props}

        initializers = {init.name for init in proto.graph.initializer}
        inputs = [i for i in proto.graph.input if i.name not in initializers]
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs) or "none"
            raise ModelLoadError(
                f"{self.source} has {len(inputs)} inputs ({names}); onnxplain needs exactly one image input."
            )
        graph_input = inputs[0]
        in_type = graph_input.type.tensor_type
        dtype_name = onnx.helper.tensor_dtype_to_np_dtype(in_type.elem_type) if in_type.elem_type else None
        if dtype_name not in (np.float32, np.float16, np.float64):
            raise ModelLoadError(f"{self.source}: input {graph_input.name!r} is not a float tensor ({dtype_name}).")
        self.input_dtype = np.dtype(dtype_name)
        dims = _dims(graph_input)
        if len(dims) < 2:
            raise ModelLoadError(f"{self.source}: input {graph_input.name!r} has rank {len(dims)}; need a batch axis.")
        self.fixed_batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        sample_dims = dims[1:]
        if layout == "NHWC":
            if len(sample_dims) != 3:
                raise ModelLoadError(f"{self.source}: layout NHWC needs a rank-4 input, got rank {len(dims)}.")
            sample_dims = [sample_dims[2], sample_dims[0], sample_dims[1]]
        if input_shape is not None:
            shape = tuple(int(d) for d in input_shape)
            if len(shape) != len(sample_dims) or any(
                isinstance(d, int) and d > 0 and d != s for d, s in zip(sample_dims, shape, strict=True)
            ):
                raise InvalidInputError(f"input_shape {shape} does not fit the graph's input {dims} ({layout}).")
        elif all(isinstance(d, int) and d > 0 for d in sample_dims):
            shape = tuple(int(d) for d in sample_dims)  # type: ignore[arg-type]
        else:
            raise ModelLoadError(
                f"{self.source}: input {graph_input.name!r} has dynamic sample dims {dims[1:]}; pass input_shape=(C, H, W)."
            )
        self.input_name = graph_input.name
        self.layout = layout

        outputs = list(proto.graph.output)
        scored = [o for o in outputs if len(_dims(o)) == 2]
        if len(outputs) == 1:
            chosen = outputs[0]
        elif len(scored) == 1:
            chosen = scored[0]
        else:
            names = ", ".join(o.name for o in outputs) or "none"
            raise ModelLoadError(
                f"{self.source} has outputs ({names}); onnxplain needs one (N, num_classes) class-score output."
            )
        rank_dims = _dims(chosen)
        squeezable = len(rank_dims) > 2 and all(d == 1 for d in rank_dims[2:])  # e.g. (N, K, 1, 1)
        if rank_dims and len(rank_dims) != 2 and not squeezable:
            raise ModelLoadError(
                f"{self.source}: output {chosen.name!r} has shape {rank_dims}; onnxplain needs one "
                "(N, num_classes) class-score output."
            )
        self.output_name = chosen.name
        out_dims = rank_dims[1:]
        self._output_sample = tuple(out_dims) if all(isinstance(d, int) and d > 0 for d in out_dims) else None
        out_type = chosen.type.tensor_type.elem_type
        self._output_dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(out_type)) if out_type else np.dtype("float32")
        self._ends = _ends_in(proto.graph, chosen.name)
        self.ends_in_softmax = self._ends == "softmax"

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if intra_op_threads is not None:
            options.intra_op_num_threads = int(intra_op_threads)
        self.intra_op_threads = int(intra_op_threads or 0)
        if self.device_type == "cuda":
            providers: list[Any] = [
                (
                    "CUDAExecutionProvider",
                    {"device_id": self.device_id, "arena_extend_strategy": "kSameAsRequested",
                     "cudnn_conv_algo_search": "EXHAUSTIVE", "enable_cuda_graph": "1" if cuda_graph else "0"},
                ),
                "CPUExecutionProvider",
            ]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(raw, sess_options=options, providers=providers)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"ONNX Runtime cannot load {self.source}: {first}") from exc
        if self.device_type == "cuda" and "CUDAExecutionProvider" not in self.session.get_providers():
            raise DeviceUnavailableError("CUDA was requested but ONNX Runtime could not load its CUDA provider.")
        self.device = "cpu" if self.device_type == "cpu" else f"cuda:{self.device_id}"
        self.uses_host_cpu = self.device_type == "cpu"
        self._digest = hashlib.sha1(raw).hexdigest()

        num_classes = _dims(chosen)[-1] if _dims(chosen) else None
        super().__init__(
            shape,
            1,
            output=output,
            batch_size=None if batch_size == "auto" else int(batch_size),
            max_queries=max_queries,
            preprocess=preprocess,
        )
        self.auto_batch = batch_size == "auto"
        if isinstance(num_classes, int) and num_classes > 0:
            self.num_classes = num_classes
        else:
            probe = self._forward(np.zeros((self.fixed_batch or 1, *self.input_shape), np.float32))
            self.num_classes = int(np.asarray(probe).reshape(self.fixed_batch or 1, -1).shape[1])
        if self.num_classes < 2 and output == "probs":
            raise ModelLoadError(f"{self.source} returns {self.num_classes} score per sample; 'probs' needs ≥ 2 classes.")

    # -- metadata -------------------------------------------------------------------------------
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

    # -- batching -------------------------------------------------------------------------------
    def _chunk_size(self) -> int:
        if self.fixed_batch is not None:
            return self.fixed_batch
        if self.batch_size is None:
            self.batch_size = self._measure_best_batch_size()
        return self.batch_size

    def best_batch_size(self) -> int:
        return self._chunk_size()

    def _measure_best_batch_size(self) -> int:
        """Time growing chunk sizes and keep the best throughput; cached per model and device.

        1. **Sweep.** Each size gets a warm-up call, then calls for at least 0.05 s (one call for
           a slow size); growth stops after two sizes in a row 20 % below the best rate so far
           (CPU throughput often peaks at small batches for large models and falls beyond),
           before a chunk over 256 MiB, or before a size whose single call would take over 0.5 s
           at the best rate seen.
        2. **Confirmation.** The sizes within 30 % of the sweep's best are measured again in three
           interleaved rounds (:func:`confirm_rates`): on a shared machine whose speed drifts by
           ±20 % within a second, one sequential pass favours the sizes that ran in a fast spell.
        3. **Pick.** The largest size within 5 % of the best median rate (:func:`pick_batch_size`):
           the same speed in fewer calls leaves less per-call overhead to the explainer.

        Measured on this project's 2-core machines: 0.6–1.1 s for the demo MNIST CNN (picks 64–1024
        of a flat curve), about 4 s for ResNet-18 at 25 ms a sample (picks 4–16).
        """
        key = (self._digest, self.device, self.intra_op_threads, self.layout)
        if key in _BEST_BATCH_CACHE:
            return _BEST_BATCH_CACHE[key]
        rng = np.random.default_rng(0)
        sample_bytes = int(np.prod(self.input_shape)) * 4
        rates: dict[int, float] = {}
        best_rate, stalled = 0.0, 0
        for size in _AUTO_CANDIDATES:
            if size > 1 and size * sample_bytes > _AUTO_MAX_CHUNK_BYTES:
                break
            if len(rates) >= 3 and size / best_rate > _AUTO_MAX_CALL_SECONDS:
                break  # one call of this size would take too long to be worth measuring
            chunk = rng.random((size, *self.input_shape), dtype=np.float32)
            if self.preprocess is not None:
                chunk = self.preprocess(chunk)
            self._forward(chunk)  # warm-up (allocations, kernel selection)
            times: list[float] = []
            while len(times) < _AUTO_MIN_CALLS or sum(times) < _AUTO_SECONDS_PER_CANDIDATE:
                t0 = time.perf_counter()
                self._forward(chunk)
                times.append(time.perf_counter() - t0)
                if sum(times) > _AUTO_MAX_SECONDS_PER_CANDIDATE:
                    break
            rates[size] = size / float(np.median(times))
            stalled = stalled + 1 if rates[size] < (1 - _AUTO_STALL_MARGIN) * best_rate else 0
            best_rate = max(best_rate, rates[size])
            if stalled >= 2:
                break
        finalists = sorted(size for size, rate in rates.items() if rate >= (1 - _AUTO_FINALIST_MARGIN) * best_rate)
        if len(finalists) > 1:
            chunk = rng.random((finalists[-1], *self.input_shape), dtype=np.float32)
            if self.preprocess is not None:
                chunk = self.preprocess(chunk)

            def rate_of(size: int) -> float:
                calls, t0 = 0, time.perf_counter()
                while True:
                    self._forward(chunk[:size])
                    calls += 1
                    elapsed = time.perf_counter() - t0
                    if elapsed >= _AUTO_CONFIRM_SECONDS:
                        return size * calls / elapsed

            rates = confirm_rates(finalists, rate_of, _AUTO_CONFIRM_ROUNDS)
        best = pick_batch_size(rates)
        self._static.clear()  # buffers of the candidate sizes
        _BEST_BATCH_CACHE[key] = best
        return best

    # -- forwarding -----------------------------------------------------------------------------
    def _forward(self, chunk: Any) -> np.ndarray:
        """One chunk, padded to the fixed chunk shape when the batch axis is fixed or IO-bound.

        ``chunk`` is a numpy array or a torch tensor on the model's device (device-side
        perturbations); only the scores come back to the host.
        """
        n = int(chunk.shape[0])
        pad_to = self.fixed_batch or (self.batch_size if self.io_binding else None)
        numpy_input = isinstance(chunk, np.ndarray)
        if pad_to and n < pad_to:
            if numpy_input:
                chunk = np.concatenate([chunk, np.zeros((pad_to - n, *chunk.shape[1:]), chunk.dtype)])
            else:
                chunk = torch_pad(chunk, pad_to)
        if self.layout == "NHWC":
            chunk = chunk.transpose(0, 2, 3, 1) if numpy_input else chunk.permute(0, 2, 3, 1)
        if numpy_input:
            chunk = np.ascontiguousarray(chunk, dtype=self.input_dtype)
        elif (chunk.device.type == "cuda") != (self.device_type == "cuda"):
            raise InvalidInputError(f"a tensor on {chunk.device} was given to a model on {self.device}.")
        if self.io_binding:
            shape = tuple(int(d) for d in chunk.shape)
            static = self._static.get(shape)
            if static is None:
                static = self._static[shape] = _StaticIO(self, shape)
            out = static.run(chunk)
        else:
            if not numpy_input:
                chunk = np.ascontiguousarray(chunk.detach().cpu().numpy(), dtype=self.input_dtype)
            out = self.session.run([self.output_name], {self.input_name: chunk})[0]
        out = np.asarray(out)
        return out.reshape(out.shape[0], -1)[:n]

    def _head(self, raw: np.ndarray) -> np.ndarray:
        if self._ends == "logsoftmax" and self.output != "raw":
            return np.exp(raw) if self.output == "probs" else raw
        return super()._head(raw)

    def __repr__(self) -> str:
        return (
            f"OnnxModel({self.source!r}, input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"device={self.device!r}, output={self.output!r})"
        )
