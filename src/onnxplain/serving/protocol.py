"""The KServe v2 / Open Inference Protocol as both ends of onnxplain speak it: one home for the
paths, header names, datatypes and tensor encoding shared by :class:`~onnxplain.models.RemoteModel`
(the client) and :class:`~onnxplain.serving.V2Server` (the test/inference server).

Protocol (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol):

* ``GET  {base}/v2`` — server metadata; ``"binary_tensor_data"`` in ``extensions`` means the
  binary tensor extension is available.
* ``GET  {base}/v2/models/{name}[/versions/{v}]`` — model metadata: input/output names, datatypes
  and shapes (``-1`` for a dynamic axis). Some servers publish empty lists (MLServer without
  declared tensors) or nothing at all.
* ``GET  {base}/v2/models/{name}[/versions/{v}]/config`` — Triton only (``max_batch_size``).
* ``POST {base}/v2/models/{name}[/versions/{v}]/infer`` — inference. JSON:
  ``{"inputs": [{"name", "shape", "datatype", "data": [...]}], "outputs": [{"name"}]}``. Binary
  extension: the body is that JSON header followed by the raw little-endian row-major tensor
  bytes, the header length in ``Inference-Header-Content-Length``, each binary tensor carrying
  ``parameters.binary_data_size`` and a binary output requested with ``parameters.binary_data``.

Decoding errors raise :class:`ProtocolError` with a message that names the tensor; the client
turns it into a :class:`~onnxplain.errors.RemoteModelError` naming the URL, the server into an
HTTP 400.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError

__all__ = [
    "BINARY_EXTENSION",
    "BINARY_HEADER",
    "FLOAT_DATATYPES",
    "MalformedJSON",
    "ORT_TO_V2",
    "V2_DATATYPES",
    "ProtocolError",
    "decode_scores",
    "decode_tensor",
    "encode_infer_request",
    "encode_tensors",
    "error_text",
    "model_path",
    "parse_infer_response",
    "parse_v2_url",
    "split_body",
]

# -- names ----------------------------------------------------------------------------------------
BINARY_HEADER = "Inference-Header-Content-Length"
"""Length of the JSON header in front of the binary tensor bytes (request and response)."""
BINARY_EXTENSION = "binary_tensor_data"
"""The server-metadata extension that announces the binary tensor extension."""
SERVER_PATH = "/v2"
HEALTH_PATHS = ("/v2/health/live", "/v2/health/ready")
INFER, CONFIG, READY = "/infer", "/config", "/ready"
MODEL_ROUTE = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/[a-z]+)?$")
"""A model path (without any prefix): name, optional version and what follows (``/infer``…)."""
_V2_URL = re.compile(r"^(?P<base>.*?)/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$")

# -- datatypes ------------------------------------------------------------------------------------
V2_DATATYPES: dict[str, np.dtype] = {
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
}
"""v2 datatype name -> numpy dtype (little-endian, as the binary extension prescribes)."""
FLOAT_DATATYPES = ("FP16", "FP32", "FP64")
"""The datatypes onnxplain sends explicands in and accepts scores in."""
DEFAULT_DATATYPE = "FP32"
"""What the client sends when the metadata names no input datatype (checked on the first answer)."""
ORT_TO_V2 = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
}


class ProtocolError(ValueError):
    """A message that is not the v2 protocol (bad JSON, a tensor that does not fit its shape...)."""


class MalformedJSON(ProtocolError):
    """The JSON part of a body does not parse; the message is the parser's."""


def model_path(name: str, version: str | None = None) -> str:
    """``/v2/models/{name}[/versions/{version}]`` with both parts URL-quoted."""
    path = f"/v2/models/{urllib.parse.quote(name, safe='')}"
    if version is not None:
        path += f"/versions/{urllib.parse.quote(str(version), safe='')}"
    return path


def parse_v2_url(url: str) -> tuple[str, str, str | None]:
    """Split ``http://host:port[/prefix]/v2/models/NAME[/versions/V]`` into (base, name, version)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(f"{url!r} is not an http(s) URL of a v2 model endpoint.")
    match = _V2_URL.match(parts.path)
    if match is None:
        raise InvalidInputError(
            f"{url!r} is not a v2 model URL; expected http://host:port/v2/models/NAME[/versions/V]."
        )
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, match["base"], "", ""))
    name = urllib.parse.unquote(match["name"])
    version = match["version"] and urllib.parse.unquote(match["version"])
    return base, name, version


def error_text(body: bytes, limit: int = 200) -> str:
    """The server's error message: the v2 ``{"error": ...}`` field (FastAPI's ``detail``), else the
    start of the body."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            for key in ("error", "detail"):
                if key in doc:
                    return str(doc[key])[:limit]
    except ValueError:
        pass
    text = body[:limit].decode("utf-8", "replace").strip()
    return text or "empty body"


# -- bodies ---------------------------------------------------------------------------------------
def split_body(body: bytes, header_length: int | str | None) -> tuple[Any, bytes]:
    """``(json_document, binary_tail)`` of a request or response body."""
    try:
        if header_length is not None:
            split = int(header_length)
            if not 0 <= split <= len(body):
                raise ProtocolError(f"{BINARY_HEADER} {split} exceeds the body of {len(body)} bytes")
            return json.loads(body[:split]), body[split:]
        return json.loads(body), b""
    except ProtocolError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int("x")
        raise MalformedJSON(str(exc)) from exc


def decode_tensor(
    entry: Any, binary: bytes, offset: int, kind: str, count: int | None = None
) -> tuple[np.ndarray, str, int]:
    """One tensor entry of a request (``kind="input"``) or response (``"output"``).

    Returns ``(values, datatype, offset after its binary bytes)``. ``values`` is flat, in the
    entry's dtype (native byte order); the caller reshapes it after checking ``entry["shape"]``.
    ``count``: the element count the binary bytes must hold, where the caller knows it.
    """
    if not isinstance(entry, dict):
        raise ProtocolError(f"malformed {kind} entry {str(entry)[:60]!r}")
    name, datatype = entry.get("name"), entry.get("datatype")
    dtype = V2_DATATYPES.get(str(datatype))
    if dtype is None:
        raise ProtocolError(f"{kind} {name!r} has datatype {datatype!r}, not one of {', '.join(V2_DATATYPES)}")
    size = (entry.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        fits = count is None or size == count * dtype.itemsize
        if not isinstance(size, int) or size < 0 or offset + size > len(binary) or size % dtype.itemsize or not fits:
            raise ProtocolError(f"{kind} {name!r} declares {size} binary bytes, which do not fit")
        values = np.frombuffer(binary, dtype, size // dtype.itemsize, offset)
        return values.astype(dtype.newbyteorder("="), copy=False), str(datatype), offset + size
    data = entry.get("data")
    if not isinstance(data, list):
        raise ProtocolError(f"{kind} {name!r} carries no data")
    try:
        values = np.asarray(data, dtype=dtype.newbyteorder("=")).ravel()
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"{kind} {name!r} holds non-numbers") from exc
    return values, str(datatype), offset


def entry_shape(entry: Mapping[str, Any]) -> list[int] | None:
    """The entry's ``shape`` as a list of non-negative ints, ``None`` if absent, else ProtocolError."""
    shape = entry.get("shape")
    if shape is None:
        return None
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"{entry.get('name')!r} has an invalid shape {shape!r}")
    return shape


def encode_tensors(
    entries: Sequence[dict[str, Any]], arrays: Sequence[np.ndarray], binary: Sequence[bool]
) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Fill each entry with its array (``data`` list, or ``binary_data_size`` and raw bytes).

    float32 -> Python float is exact and ``json`` writes the shortest repr that round-trips, so
    JSON loses no bits either way.
    """
    chunks: list[bytes] = []
    for entry, array, as_binary in zip(entries, arrays, binary, strict=True):
        datatype = entry["datatype"]
        wire = np.ascontiguousarray(array, dtype=V2_DATATYPES[datatype])
        entry["shape"] = list(wire.shape)
        if as_binary:
            raw = wire.tobytes()
            entry["parameters"] = {**entry.get("parameters", {}), "binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = wire.ravel().tolist()
    return chunks, list(entries)


def encode_document(doc: dict[str, Any], chunks: Sequence[bytes]) -> tuple[bytes, dict[str, str]]:
    """``(body, headers)``: the JSON document, followed by the binary chunks if there are any."""
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not chunks:
        return head, {"Content-Type": "application/json"}
    return head + b"".join(chunks), {"Content-Type": "application/octet-stream", BINARY_HEADER: str(len(head))}


def encode_infer_request(
    array: np.ndarray, *, input_name: str, datatype: str, output_name: str, binary: bool
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an ``infer`` request for one input tensor and one wanted output."""
    entry: dict[str, Any] = {"name": input_name, "datatype": datatype}
    chunks, inputs = encode_tensors([entry], [array], [binary])
    wanted: dict[str, Any] = {"name": output_name}
    if binary:
        wanted["parameters"] = {"binary_data": True}
    return encode_document({"inputs": inputs, "outputs": [wanted]}, chunks)


def parse_infer_response(
    body: bytes, header_length: str | None, output_name: str
) -> tuple[np.ndarray, list[int] | None, str]:
    """``(flat values, shape or None, datatype)`` of output ``output_name`` in an ``infer`` answer."""
    doc, binary = split_body(body, header_length)
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list):
        raise ProtocolError("the answer has no 'outputs' list")
    offset = 0
    for out in outputs:
        if not isinstance(out, dict):
            raise ProtocolError("malformed output entry")
        if out.get("name") != output_name:
            size = (out.get("parameters") or {}).get("binary_data_size")
            offset += int(size) if isinstance(size, int) else 0
            continue
        values, datatype, _ = decode_tensor(out, binary, offset, "output")
        return values, entry_shape(out), datatype
    raise ProtocolError(f"the answer has no output {output_name!r}")


def decode_scores(
    body: bytes, header_length: str | None, output_name: str, *, sent: int, classes: int
) -> tuple[np.ndarray, str]:
    """``(scores (sent, classes) float32, datatype)`` from an ``infer`` answer to ``sent`` samples.

    Refuses (ProtocolError) a non-float output, a ``shape`` whose rows differ from the samples
    sent or whose sample part does not hold ``classes`` values, and a data length that does not
    fill ``sent × classes``.
    """
    values, shape, datatype = parse_infer_response(body, header_length, output_name)
    name = output_name
    if datatype not in FLOAT_DATATYPES:
        raise ProtocolError(f"output {name!r} has datatype {datatype!r}, not a float type")
    if shape is not None and len(shape) >= 1 and shape[0] != sent:
        raise ProtocolError(f"output {name!r} has {shape[0]} rows for the {sent} samples sent (shape {shape})")
    if shape is not None and (len(shape) < 2 or int(np.prod(shape[1:])) != classes):
        raise ProtocolError(f"output {name!r} has shape {shape}, expected [{sent}, {classes}]")
    if values.size != sent * classes:
        raise ProtocolError(f"output {name!r} has {values.size} values for {sent} samples of {classes} classes")
    return values.astype(np.float32, copy=False).reshape(sent, classes), datatype
