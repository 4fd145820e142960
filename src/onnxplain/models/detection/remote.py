"""A detector behind a KServe v2 / Open Inference Protocol endpoint (Triton, KServe, MLServer).

:func:`open_remote_detector` reads the model's metadata (one image input, its outputs), then
runs every chunk as one ``infer`` request asking for all outputs (binary tensor extension by
default) and hands them to the decoder by name, so every format of
:mod:`~onnxplain.models.detection.decoders` works remotely. The connection, timeouts and retries
are :class:`~onnxplain.models._http.HttpTransport`'s (the policy of ``RemoteModel``); the wire
format is :mod:`onnxplain.serving.protocol`'s. A server does not publish ONNX metadata, so class
names and (for a dynamic input) the input size are given here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxplain.errors import ModelLoadError, RemoteModelError
from onnxplain.models._http import HttpTransport, remote_error
from onnxplain.serving.protocol import (
    BINARY_HEADER,
    INFER,
    V2_DATATYPES,
    MalformedJSON,
    ProtocolError,
    decode_tensor,
    encode_document,
    encode_tensors,
    entry_shape,
    error_text,
    model_path,
    parse_v2_url,
    split_body,
)

FEEDABLE = ("FP32", "FP16", "FP64", "UINT8")


def open_remote_detector(
    url: str,
    *,
    imgsz: Sequence[int] | int | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    binary: bool = True,
    batch_size: int = 8,
    headers: Mapping[str, str] | None = None,
    **options: Any,
) -> Any:
    """A :class:`~onnxplain.models.detection.runtime.Detector` on ``http://host:port/v2/models/NAME``.

    The input's shape in the metadata gives the size (else ``imgsz``) and a fixed batch axis
    (then respected: one request per that many samples); other ``options`` (``decoder``,
    ``names``, ``input_scale``, ``channel_order``, ``placement``, ``pad_value``) go to the Detector.
    """
    from onnxplain.models.detection.runtime import Detector, _as_hw

    base, name, version = parse_v2_url(url)
    http = HttpTransport(base, timeout=timeout, retries=retries, backoff=0.25, backoff_max=4.0, headers=headers)
    path = model_path(name, version)
    meta = http.get_json(path, what="model metadata")
    inputs, outputs = meta.get("inputs"), meta.get("outputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(outputs, list) or not outputs:
        raise ModelLoadError(f"{url}: a detector needs one image input and its outputs in the model metadata.")
    entry = inputs[0]
    datatype = str(entry.get("datatype", "FP32"))
    if datatype not in FEEDABLE:
        raise ModelLoadError(f"{url}: input {entry.get('name')!r} is {datatype}; onnxplain feeds {', '.join(FEEDABLE)}.")
    shape = [int(d) for d in entry.get("shape", [])]
    if len(shape) != 4:
        raise ModelLoadError(f"{url}: input {entry.get('name')!r} has shape {shape}; a detector takes (N, 3, H, W).")
    declared = (shape[2], shape[3]) if min(shape[2:]) > 0 else None
    hw = _as_hw(imgsz) if imgsz is not None else declared
    if hw is None:
        raise ModelLoadError(f"{url} declares a dynamic input size {shape}; give imgsz=(H, W).")
    fixed = shape[0] if shape[0] > 0 else None
    names = [str(o.get("name")) for o in outputs]
    run = _Infer(http, path, base + path + INFER, str(entry.get("name")), datatype, names, binary)
    return Detector(run, hw, input_dtype=V2_DATATYPES[datatype], fixed_batch=fixed, batch_size=batch_size,
                    source=url, **options)  # fmt: skip


class _Infer:
    """One ``infer`` request per chunk, every output asked for and decoded by name."""

    def __init__(
        self, http: HttpTransport, path: str, url: str, input_name: str, datatype: str, outputs: list[str], binary: bool
    ) -> None:
        self.http, self.path, self.url = http, path, url
        self.input_name, self.datatype, self.outputs, self.binary = input_name, datatype, outputs, binary

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        entry = {"name": self.input_name, "datatype": self.datatype}
        chunks, inputs = encode_tensors([entry], [x], [self.binary])
        wanted = [{"name": o, **({"parameters": {"binary_data": True}} if self.binary else {})} for o in self.outputs]
        body, headers = encode_document({"inputs": inputs, "outputs": wanted}, chunks)
        response = self.http.request("POST", self.path + INFER, body, headers)
        if response.status != 200:
            raise remote_error(f"POST {self.url} answered HTTP {response.status}: {error_text(response.body)}.",
                               self.url, response.status)  # fmt: skip
        try:
            return self._decode(response.body, response.headers.get(BINARY_HEADER.lower()))
        except MalformedJSON as exc:
            raise remote_error(f"POST {self.url} returned malformed JSON ({exc}).", self.url, 200) from exc
        except ProtocolError as exc:
            raise remote_error(f"POST {self.url}: {exc}.", self.url, 200) from exc

    def _decode(self, body: bytes, header_length: str | None) -> dict[str, np.ndarray]:
        doc, tail = split_body(body, header_length)
        entries = doc.get("outputs") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise ProtocolError("the answer has no 'outputs' list")
        out, offset = {}, 0
        for e in entries:  # one per output tensor (a handful), not per sample
            values, _, offset = decode_tensor(e, tail, offset, "output")
            shape = entry_shape(e)
            if shape is None or int(np.prod(shape)) != values.size:
                raise ProtocolError(f"output {e.get('name')!r} has shape {shape} for {values.size} values")
            out[str(e.get("name"))] = values.reshape(shape)
        missing = [o for o in self.outputs if o not in out]
        if missing:
            raise RemoteModelError(f"POST {self.url}: the answer lacks output(s) {', '.join(missing)}.")
        return out
