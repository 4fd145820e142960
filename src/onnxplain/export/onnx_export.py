"""torch module → ONNX model that takes [0,1] pixels, with a parity check against torch."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from onnxplain._io import atomic_write, check_output_path
from onnxplain.checks import (
    check_bool,
    check_nonnegative_float,
    check_positive_int,
    check_seed,
    check_shape,
)
from onnxplain.errors import ExportError, InvalidInputError, NonFiniteOutputError
from onnxplain.export.wrap import PixelSpaceModel
from onnxplain.models.base import Normalize, QueryModel

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
PARITY_BATCH_SIZES = (1, 2, 7)
# Highest IR version tried first; lowered until the installed ONNX Runtime accepts the model.
_MAX_IR_TRY = 13
_MIN_IR = 7


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and how closely ONNX Runtime reproduces torch."""

    path: str
    input_shape: tuple[int, ...]
    num_classes: int
    opset: int
    ir_version: int
    parity_batch_sizes: tuple[int, ...]
    max_abs_diff: float
    top1_agreement: float
    seconds: float
    metadata: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ir_version_for_ort(proto: Any) -> int:
    """Lower the model's IR version until ONNX Runtime loads it (onnx 1.23 writes 14, ORT 1.31 reads ≤ 13)."""
    import onnxruntime as ort

    errors = []
    for ir in range(min(proto.ir_version, _MAX_IR_TRY), _MIN_IR - 1, -1):
        proto.ir_version = ir
        try:
            ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
            return ir
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            errors.append(str(exc).splitlines()[0])
            if "IR version" not in str(exc) and "ir_version" not in str(exc).lower():
                break
    raise ExportError(f"ONNX Runtime cannot load the exported model: {errors[-1] if errors else 'unknown error'}")


def check_parity(
    module: torch.nn.Module,
    onnx_model: Any,
    input_shape: Sequence[int],
    *,
    batch_sizes: Sequence[int] = PARITY_BATCH_SIZES,
    seed: int = 0,
) -> tuple[float, float]:
    """Max |ORT − torch| over random [0,1] batches of the given sizes, and top-1 agreement.

    ``onnx_model`` is an :class:`~onnxplain.models.onnx.OnnxModel` with ``output="raw"``.
    """
    if not isinstance(module, torch.nn.Module):
        raise InvalidInputError(f"check_parity needs a torch.nn.Module, got {type(module).__name__}.")
    if not isinstance(onnx_model, QueryModel):
        raise InvalidInputError(f"check_parity needs a QueryModel (an OnnxModel), got {type(onnx_model).__name__}.")
    shape = check_shape("input_shape", input_shape)
    sizes = [check_positive_int("every batch size", n) for n in batch_sizes]
    generator = torch.Generator().manual_seed(check_seed(seed))
    max_diff, agree, total = 0.0, 0, 0
    module = module.eval()
    for n in sizes:
        x = torch.rand((n, *shape), generator=generator)
        with torch.inference_mode():
            ref = _run_module(module, x).reshape(n, -1).double().numpy()
        got = np.asarray(onnx_model(x.numpy()), np.float64)
        max_diff = max(max_diff, float(np.abs(got - ref).max()))
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        total += n
    return max_diff, agree / total


def _run_module(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``; a module that cannot run on x's shape is reported as bad input (cause kept)."""
    try:
        return module(x)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"the module cannot run on input of shape {tuple(x.shape[1:])}: {first}") from exc


def _check_normalize(normalize: Any, channels: int) -> Normalize | None:
    """``None``, a :class:`Normalize` or a ``(mean, std)`` pair, checked against the channel count."""
    if normalize is None:
        return None
    if not isinstance(normalize, Normalize):
        if isinstance(normalize, (str, bytes)) or not (isinstance(normalize, Sequence) and len(normalize) == 2):
            raise InvalidInputError(f"normalize must be Normalize(mean, std) or a (mean, std) pair, not {normalize!r}.")
        normalize = Normalize(*normalize)
    normalize.check_channels(channels)
    return normalize


def export_onnx(
    module: torch.nn.Module,
    path: str | os.PathLike[str],
    input_shape: Sequence[int],
    *,
    normalize: Normalize | tuple[Sequence[float], Sequence[float]] | None = None,
    labels: Sequence[str] | None = None,
    opset: int = 18,
    check: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    source: str | None = None,
) -> ExportReport:
    """Export ``module`` so the ONNX model takes float32 [0,1] NCHW pixels, with a dynamic batch axis.

    The module is wrapped in :class:`PixelSpaceModel` with ``normalize`` inside the graph, exported
    with torch's current (dynamo) exporter from an example batch of 2 (torch.export specialises
    batch sizes 0 and 1), given an IR version the installed ONNX Runtime reads, and tagged with
    metadata (labels, input space, mean/std, source). With ``check=True`` the ONNX Runtime output
    is compared with torch on batches of 1, 2 and 7: the export fails (nothing is written) unless
    ``|ort − torch| ≤ atol + rtol·|torch|`` everywhere and top-1 agrees on every sample.
    """
    from onnxplain.models.onnx import OnnxModel

    started = time.perf_counter()
    if not isinstance(module, torch.nn.Module):
        raise InvalidInputError(f"export_onnx needs a torch.nn.Module, got {type(module).__name__}.")
    shape = check_shape("input_shape", input_shape)
    if len(shape) != 3:
        raise InvalidInputError(f"input_shape must be (C, H, W) with positive sizes, got {shape}.")
    out = check_output_path(path, "ONNX path")
    normalize = _check_normalize(normalize, shape[0])
    if labels is not None and (isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence)):
        raise InvalidInputError(f"labels must be a sequence of class names, not {type(labels).__name__}.")
    opset = check_positive_int("opset", opset)
    check = check_bool("check", check)
    atol, rtol = check_nonnegative_float("atol", atol), check_nonnegative_float("rtol", rtol)
    if source is not None and not isinstance(source, str):
        raise InvalidInputError(f"source must be a string or None, not {type(source).__name__}.")
    wrapped = PixelSpaceModel(
        module,
        mean=normalize.mean if normalize else None,
        std=normalize.std if normalize else None,
        input_shape=shape,
    ).eval()
    example = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = _run_module(wrapped, example)
    if not bool(torch.isfinite(reference).all()):
        raise NonFiniteOutputError("the module returns NaN or infinite scores on random [0,1] input; nothing was exported.")
    if reference.ndim != 2:
        raise ExportError(f"the module returns shape {tuple(reference.shape)}; a classifier must return (N, classes).")
    num_classes = int(reference.shape[1])
    if labels is not None and len(labels) != num_classes:
        raise InvalidInputError(f"{len(labels)} labels were given for a model with {num_classes} classes.")

    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapped,
                (example,),
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed: {str(exc).strip().splitlines()[0]}") from exc
    proto = program.model_proto
    metadata = {
        "onnxplain_input_space": "float32 NCHW pixels in [0,1]",
        "input_shape": json.dumps(list(shape)),
        "num_classes": str(num_classes),
        "normalize_mean": json.dumps(list(normalize.mean) if normalize else None),
        "normalize_std": json.dumps(list(normalize.std) if normalize else None),
        "source_architecture": source or type(module).__name__,
    }
    if labels is not None:
        metadata["labels"] = json.dumps([str(v) for v in labels])
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    ir_version = _ir_version_for_ort(proto)
    data = proto.SerializeToString()

    max_diff, agreement = 0.0, 1.0
    if check:
        onnx_model = OnnxModel(data, output="raw", device="cpu", batch_size=8)
        max_diff, agreement = check_parity(wrapped, onnx_model, shape)
        scale = 0.0
        with torch.inference_mode():
            scale = float(wrapped(example).abs().max())
        if max_diff > atol + rtol * scale or agreement < 1.0:
            raise ExportError(
                f"the exported model disagrees with torch: max |ort − torch| = {max_diff:.3g}, "
                f"top-1 agreement {agreement:.1%} (tolerance {atol} + {rtol}·{scale:.3g})."
            )
    with atomic_write(out) as handle:
        handle.write(data)
    return ExportReport(
        path=str(out),
        input_shape=shape,
        num_classes=num_classes,
        opset=opset,
        ir_version=ir_version,
        parity_batch_sizes=PARITY_BATCH_SIZES if check else (),
        max_abs_diff=max_diff,
        top1_agreement=agreement,
        seconds=time.perf_counter() - started,
        metadata=metadata,
    )
