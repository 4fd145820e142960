"""A detector as a function of letterboxed model inputs: runner, input conversion, decoder.

:class:`Detector` takes batches of model inputs in [0,1] RGB (``(n, 3, H, W)``), converts them
to what the network reads (channel order, value scale, dtype), runs them and decodes the raw
outputs into :class:`~onnxplain.models.detection.decoders.Proposals`. The runner is an ONNX
Runtime session (:func:`open_onnx_detector`) or any function returning the raw outputs by name
(a remote endpoint, a test double: :meth:`Detector.from_function`).

**Fixed batch dimension.** Ultralytics and YOLOX exports often fix the batch axis to 1. Such a
graph is run one sample per call: no padding to a bigger batch and no wasted compute (a
one-sample ``run`` costs the per-sample compute plus ONNX Runtime's call overhead, tens of µs
against milliseconds of convolutions; ``benchmarks/detector_fidelity.py`` measures it). Relaxing
the axis in memory is not done: exported reshapes often hard-code the 1.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from onnxplain.checks import check_choice, check_positive_float
from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.models import autobatch
from onnxplain.models._graph import _choose_input, _input_dtype, dims
from onnxplain.models._ort import load_proto, open_session, ort_device, read_model_bytes
from onnxplain.models.detection.boxes import ULTRALYTICS_PAD
from onnxplain.models.detection.decoders import Decoder, Proposals, choose_decoder
from onnxplain.models.inputs import convert_input

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]
Placement = Literal["center", "top-left"]


def parse_names(metadata: dict[str, str]) -> list[str] | None:
    """Class names from Ultralytics' ``names`` (a dict literal ``{0: 'person', …}``) or a JSON list."""
    text = metadata.get("names") or metadata.get("labels")
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            value = json.loads(text)
        except ValueError:
            return None
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value)]
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else None


def parse_imgsz(metadata: dict[str, str]) -> tuple[int, int] | None:
    """Ultralytics' ``imgsz`` (``"[640, 640]"`` or ``"640"``) as (H, W)."""
    text = metadata.get("imgsz")
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    return None


class Detector:
    """A detector seen through its model input: ``proposals(batch) -> Proposals``.

    Args:
        runner: ``runner(batch) -> {output name: array}`` on converted model inputs (n, C, H, W).
        model_hw: the network's input (H, W).
        decoder: a format of :data:`~onnxplain.models.detection.decoders.DECODERS` or None (chosen
            from one probe forward on a grey input and ``metadata``).
        names: class names (default: the metadata's ``names``, else ``class 0``, ``class 1``, …).
        metadata: the model's metadata (Ultralytics writes ``task``, ``names``, ``imgsz``, ``stride``).
        input_dtype: what the network reads (float32, float16, uint8: :func:`convert_input`).
        input_scale: the network's value of a white pixel: 1 (Ultralytics) or 255 (YOLOX, ddddocr).
        channel_order: ``"RGB"`` (Ultralytics) or ``"BGR"`` (OpenCV-fed models such as YOLOX's).
        placement: where the letterbox puts the photo: ``"center"`` (Ultralytics) or ``"top-left"``.
        pad_value: the letterbox's grey in [0,1] (114/255).
        fixed_batch: the graph's fixed batch size (1 for many exports): run that many per call.
        batch_size: samples per runner call when the batch axis is dynamic.
    """

    def __init__(
        self,
        runner: Runner,
        model_hw: tuple[int, int],
        *,
        decoder: str | None = None,
        names: Sequence[str] | None = None,
        metadata: dict[str, str] | None = None,
        input_dtype: Any = np.float32,
        input_scale: float = 1.0,
        channel_order: Literal["RGB", "BGR"] = "RGB",
        placement: Placement = "center",
        pad_value: float = ULTRALYTICS_PAD,
        fixed_batch: int | None = None,
        batch_size: int = 16,
        source: str = "<function>",
    ) -> None:
        self.runner = runner
        self.model_hw = (int(model_hw[0]), int(model_hw[1]))
        self.metadata = dict(metadata or {})
        self.input_dtype = np.dtype(input_dtype)
        self.input_scale = check_positive_float("input_scale", input_scale)
        self.channel_order = check_choice("channel_order", channel_order, ("RGB", "BGR"))
        self.placement = check_choice("placement", placement, ("center", "top-left"))
        self.pad_value = float(pad_value)
        if not 0.0 <= self.pad_value <= 1.0:
            raise InvalidInputError(f"pad_value is a [0,1] grey level, got {pad_value}.")
        self.fixed_batch = fixed_batch
        self.batch_size = int(fixed_batch or batch_size)
        self.source = source
        self.seconds = 0.0
        probe = self.raw(np.full((1, 3, *self.model_hw), self.pad_value, np.float32))
        given = list(names) if names is not None else parse_names(self.metadata)
        k = len(given) if given else None
        self.decoder: Decoder = choose_decoder(probe, self.metadata, self.model_hw, 1, decoder, k)
        k = self.decoder.num_classes or k
        self.names = given or [f"class {i}" for i in range(k or 0)]

    @classmethod
    def from_function(cls, fn: Runner, model_hw: tuple[int, int], **options: Any) -> Detector:
        """A detector behind any function ``fn(batch) -> {name: raw output}`` (e.g. a remote one)."""
        return cls(fn, model_hw, **options)

    @property
    def center(self) -> bool:
        return self.placement == "center"

    def convert(self, batch: np.ndarray) -> np.ndarray:
        """[0,1] RGB model inputs → the network's channel order, value scale and dtype."""
        x = batch[:, ::-1] if self.channel_order == "BGR" else batch
        if self.input_scale != 1.0:
            x = x * np.float32(self.input_scale)
        return convert_input(np.ascontiguousarray(x), self.input_dtype)

    def raw(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The runner's outputs for [0,1] RGB model inputs, run in calls of :attr:`batch_size`."""
        x = self.convert(np.asarray(batch, dtype=np.float32))
        parts: list[dict[str, np.ndarray]] = []
        for start in range(0, len(x), self.batch_size):  # one call per chunk (per sample when fixed to 1)
            t0 = time.perf_counter()
            parts.append({k: np.asarray(v) for k, v in self.runner(x[start : start + self.batch_size]).items()})
            self.seconds += time.perf_counter() - t0
        if len(parts) == 1:
            return parts[0]
        decoder = getattr(self, "decoder", None)  # None only for the probe, a single call
        rows = {decoder.outputs[0]} if decoder is not None and decoder.layout == "rows7" else set()
        sizes = [min(self.batch_size, len(x) - start) for start in range(0, len(x), self.batch_size)]
        return {k: _join([p[k] for p in parts], k in rows, sizes) for k in parts[0]}

    def proposals(self, batch: np.ndarray) -> Proposals:
        """Decoded proposals of [0,1] RGB model inputs (n, 3, H, W)."""
        return self.decoder.decode(self.raw(batch), len(batch), self.model_hw)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "model_hw": list(self.model_hw),
            **self.decoder.describe(),
            "num_classes": len(self.names),
            "input_dtype": self.input_dtype.name,
            "input_scale": self.input_scale,
            "channel_order": self.channel_order,
            "placement": self.placement,
            "pad_value": round(self.pad_value, 6),
            "batch_size": self.batch_size,
            "batch_size_source": "fixed by the graph's batch axis" if self.fixed_batch else "given",
            "metadata_task": self.metadata.get("task"),
        }


def _join(arrays: list[np.ndarray], rows: bool, sizes: list[int]) -> np.ndarray:
    """Concatenate per-call outputs along the batch axis; for (M, 7) NMS rows (``rows``), shift
    each call's batch indices by the samples of the calls before it."""
    if not rows:
        return np.concatenate(arrays, axis=0)
    shifted, offset = [], 0
    for a, size in zip(arrays, sizes, strict=True):
        b = a.astype(np.float64).reshape(-1, 7).copy()
        b[:, 0] += offset
        shifted.append(b)
        offset += size
    return np.concatenate(shifted)


def open_onnx_detector(
    model: str | os.PathLike[str] | bytes,
    *,
    decoder: str | None = None,
    device: str = "auto",
    imgsz: Sequence[int] | int | None = None,
    batch_size: int | Literal["auto"] = "auto",
    intra_op_threads: int | None = None,
    names: Sequence[str] | None = None,
    **options: Any,
) -> Detector:
    """An ONNX detector file (or bytes) as a :class:`Detector` on one ONNX Runtime session.

    The input size comes from the graph, else the metadata's ``imgsz``, else ``imgsz`` (H, W or
    one side). A fixed batch axis is respected (one sample per call for batch-1 exports);
    ``batch_size="auto"`` measures the best size of a dynamic one once per machine (cached,
    :mod:`onnxplain.models.autobatch`). Other ``options`` go to :class:`Detector`
    (``input_scale``, ``channel_order``, ``placement``, ``pad_value``).
    """
    raw, source = read_model_bytes(model)
    proto = load_proto(raw, source)
    graph_input = _choose_input(proto.graph, source)
    input_dtype = _input_dtype(graph_input, source)
    shape = dims(graph_input)
    if len(shape) != 4:
        raise ModelLoadError(f"{source}: input {graph_input.name!r} has rank {len(shape)}; a detector takes (N, 3, H, W).")
    metadata = {p.key: p.value for p in proto.metadata_props}
    model_hw = _model_hw(shape, metadata, imgsz, source)
    fixed = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    session = open_session(raw, source, ort_device(device), intra_op_threads, False)
    name = graph_input.name
    outputs = [o.name for o in session.get_outputs()]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        if fixed and len(x) != fixed:
            raise InvalidInputError(f"{source} takes batches of exactly {fixed}; got {len(x)}.")
        return dict(zip(outputs, session.run(outputs, {name: x}), strict=True))

    size = _batch_size(batch_size, fixed, run, input_dtype, model_hw, raw, device, intra_op_threads)
    detector = Detector(
        run, model_hw, decoder=decoder, names=names, metadata=metadata, input_dtype=input_dtype,
        fixed_batch=fixed, batch_size=size, source=source, **options,
    )  # fmt: skip
    detector.session = session  # type: ignore[attr-defined]
    return detector


def _model_hw(shape: tuple[Any, ...], metadata: dict[str, str], imgsz: Any, source: str) -> tuple[int, int]:
    declared = shape[2:]
    if all(isinstance(d, int) and d > 0 for d in declared):
        given = _as_hw(imgsz) if imgsz is not None else None
        if given is not None and given != tuple(declared):
            raise InvalidInputError(f"imgsz {given} does not match {source}'s fixed input {list(declared)}.")
        return int(declared[0]), int(declared[1])
    hw = _as_hw(imgsz) if imgsz is not None else parse_imgsz(metadata)
    if hw is None:
        raise ModelLoadError(
            f"{source} has a dynamic input size {list(shape)} and no 'imgsz' metadata; give imgsz=(H, W) (--imgsz)."
        )
    return hw


def _as_hw(imgsz: Any) -> tuple[int, int]:
    values = [imgsz] if isinstance(imgsz, (int, np.integer)) else list(imgsz)
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in values):
        raise InvalidInputError(f"imgsz must be one positive int or (H, W), got {imgsz!r}.")
    return int(values[0]), int(values[1])


def _batch_size(
    batch_size: Any, fixed: int | None, run: Runner, dtype: np.dtype, hw: tuple[int, int], raw: bytes,
    device: str, threads: int | None,
) -> int:
    """The fixed batch, a given size, or the measured best size (cached like OnnxModel's)."""
    if fixed:
        return fixed
    if batch_size != "auto":
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise InvalidInputError(f"batch_size must be 'auto' or a positive integer, got {batch_size!r}.")
        return int(batch_size)
    key = autobatch.cache_key(model=hashlib.sha1(raw).hexdigest(), kind="detector", device=device,
                              threads=threads or 0, input_shape=[3, *hw], input_dtype=dtype.name)  # fmt: skip
    cached = autobatch.lookup(key)
    if cached is not None:
        return cached
    rng, pool = np.random.default_rng(0), [np.empty((0, 3, *hw), np.float32)]

    def make_chunk(n: int) -> np.ndarray:  # grown on demand: the probe stops before 256 MiB chunks
        if n > len(pool[0]):
            pool[0] = np.concatenate([pool[0], rng.random((n - len(pool[0]), 3, *hw), dtype=np.float32)])
        return convert_input(pool[0][:n], dtype)

    result = autobatch.probe(run, make_chunk, 3 * hw[0] * hw[1] * 4)
    best = autobatch.pick_batch_size(result.rates)
    autobatch.store(key, best, result.spent())
    return best
