"""ONNX Runtime plumbing of :class:`~onnxplain.models.onnx.OnnxModel`: which device, reading the
model file, opening a session."""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path
from typing import Any

from onnxplain.devices import parse_device
from onnxplain.errors import DeviceUnavailableError, ModelLoadError


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


def read_model_bytes(model: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
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


def load_proto(raw: bytes, source: str) -> Any:
    import onnx

    try:
        return onnx.load_model_from_string(raw)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ...
        raise ModelLoadError(f"{source} is not an ONNX model ({type(exc).__name__}).") from exc


def open_session(raw: bytes, source: str, device: tuple[str, int], threads: int | None, cuda_graph: bool) -> Any:
    """An InferenceSession with every graph optimisation, on CPU or on CUDA device ``device[1]``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    providers: list[Any] = ["CPUExecutionProvider"]
    if device[0] == "cuda":
        cuda_options = {
            "device_id": device[1],
            "arena_extend_strategy": "kSameAsRequested",
            "cudnn_conv_algo_search": "EXHAUSTIVE",
            "enable_cuda_graph": "1" if cuda_graph else "0",
        }
        providers.insert(0, ("CUDAExecutionProvider", cuda_options))
    try:
        session = ort.InferenceSession(raw, sess_options=options, providers=providers)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"ONNX Runtime cannot load {source}: {first}") from exc
    if device[0] == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise DeviceUnavailableError("CUDA was requested but ONNX Runtime could not load its CUDA provider.")
    return session
