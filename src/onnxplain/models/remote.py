"""RemoteModel: a model behind a KServe v2 / Open Inference Protocol HTTP endpoint.

Triton, KServe, MLServer and Seldon all speak this protocol; the v2 data plane has no explain
endpoint, so the explanation happens here, on the client, from ``infer`` calls alone.

Protocol (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol):

* ``GET  {base}/v2`` — server metadata; ``"binary_tensor_data"`` in ``extensions`` means the
  binary tensor extension is available.
* ``GET  {base}/v2/models/{name}[/versions/{v}]`` — model metadata: input/output names, datatypes
  and shapes (``-1`` for a dynamic axis).
* ``GET  {base}/v2/models/{name}[/versions/{v}]/config`` — Triton only; read for ``max_batch_size``
  when the caller does not give one (a 404 from other servers is fine).
* ``POST {base}/v2/models/{name}[/versions/{v}]/infer`` — inference. JSON:
  ``{"inputs": [{"name", "shape", "datatype", "data": [...]}], "outputs": [{"name"}]}``. Binary
  extension: the body is that JSON header followed by the raw little-endian row-major tensor
  bytes, the header length in ``Inference-Header-Content-Length``, each binary input carrying
  ``parameters.binary_data_size`` and the output requested with ``parameters.binary_data``.

Failure policy (the documented behaviour the tests hold us to):

* connection errors (refused, reset, dropped) and HTTP 5xx / 429 are retried ``retries`` times
  with exponential backoff ``backoff · 2^k`` seconds (capped by ``backoff_max``; a numeric
  ``Retry-After`` header is honoured within the same cap);
* a **timeout** (no byte from the server for ``timeout`` seconds on one socket operation) is
  treated as transient too, because inference is idempotent and an overloaded server is the
  usual cause: it is retried like a connection error and, once the retries are spent, raised as
  :class:`RemoteTimeoutError` (a :class:`~onnxplain.errors.RemoteModelError`);
* any other 4xx is never retried: :class:`RemoteModelError` at once, with the server's message;
* a 2xx answer that is not the protocol (malformed JSON, missing output, wrong element count) is
  not retried either: the server is answering, just not correctly.

Every error message names the URL and, where there is one, the HTTP status. Queries are counted
only when their chunk has been answered with valid scores: a retried request is never counted
twice and a failed one is not counted at all.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Literal

import numpy as np

from onnxplain.errors import (
    InvalidInputError,
    ModelLoadError,
    RemoteModelError,
)
from onnxplain.models.base import DEFAULT_BATCH_SIZE, BaseQueryModel, Normalize, OutputHead

__all__ = ["RemoteModel", "RemoteTimeoutError", "parse_v2_url"]

BINARY_HEADER = "Inference-Header-Content-Length"

# v2 datatype name -> numpy dtype (little-endian, as the binary extension prescribes)
_DTYPES: dict[str, np.dtype] = {
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_RETRY_STATUSES = frozenset({429})  # and every 5xx
_V2_URL = re.compile(r"^(?P<base>.*?)/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$")


class RemoteTimeoutError(RemoteModelError, TimeoutError):
    """The endpoint did not answer within ``timeout`` seconds, on every attempt."""


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


class _Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class RemoteModel(BaseQueryModel):
    """A QueryModel that forwards every chunk to a KServe v2 ``infer`` endpoint.

    Args:
        url: server base URL, e.g. ``"http://127.0.0.1:8000"`` (a path prefix before ``/v2`` is
            kept, for servers behind an ingress). See :meth:`from_url` for a full model URL.
        model_name: the model's name on the server.
        version: optional model version.
        input_name / output_name: which tensor to feed / read; required only when the model's
            metadata lists several.
        input_shape: one sample's shape in the explicand space (C,H,W); read from the metadata
            when every non-batch axis is static there.
        num_classes: read from the output's last axis when static.
        output: output head, as :class:`~onnxplain.models.base.BaseQueryModel`.
        ends_in_softmax: declare that the served model already outputs probabilities (the
            remote graph cannot be inspected).
        layout: ``"NCHW"`` or ``"NHWC"``: the server's tensor layout; explicands stay CHW.
        max_batch_size: largest batch the server accepts; ``None`` reads it from the metadata
            (``max_batch_size`` field, Triton's ``/config``, or a static leading axis).
        batch_size: samples per request (capped by ``max_batch_size``); default the server's
            limit, else 256.
        timeout: seconds one socket operation may wait before the attempt counts as timed out.
        retries: extra attempts after a connection error, timeout, 5xx or 429.
        backoff / backoff_max: exponential backoff base and cap, in seconds.
        max_queries: optional budget of samples (raises before anything is sent).
        concurrency: requests in flight at once when one call spans several chunks; explainers
            see ``best_batch_size() = batch_size · concurrency`` so their calls do span them.
        binary: ``"auto"`` (use the binary tensor extension when the server lists it), ``True``
            or ``False``.
        preprocess: optional :class:`~onnxplain.models.base.Normalize` applied before sending.
        headers: extra HTTP headers (e.g. an ``Authorization`` token) sent with every request.
    """

    uses_host_cpu = False  # the server computes; this process only sends and waits

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        version: str | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        input_shape: Sequence[int] | None = None,
        num_classes: int | None = None,
        output: OutputHead = "probs",
        ends_in_softmax: bool = False,
        layout: Literal["NCHW", "NHWC"] = "NCHW",
        max_batch_size: int | None = None,
        batch_size: int | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        backoff_max: float = 5.0,
        max_queries: int | None = None,
        concurrency: int = 4,
        binary: bool | Literal["auto"] = "auto",
        preprocess: Normalize | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInputError(f"{url!r} is not an http(s) URL.")
        if not model_name:
            raise InvalidInputError("model_name must be a non-empty string.")
        if layout not in ("NCHW", "NHWC"):
            raise InvalidInputError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}.")
        if not (isinstance(timeout, (int, float)) and timeout > 0 and math.isfinite(timeout)):
            raise InvalidInputError(f"timeout must be a positive number of seconds, got {timeout!r}.")
        if not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"retries must be a non-negative integer, got {retries!r}.")
        if backoff < 0 or backoff_max < 0:
            raise InvalidInputError("backoff and backoff_max must be non-negative.")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInputError(f"concurrency must be a positive integer, got {concurrency!r}.")
        if max_batch_size is not None and (not isinstance(max_batch_size, int) or max_batch_size < 1):
            raise InvalidInputError(f"max_batch_size must be a positive integer, got {max_batch_size!r}.")
        if binary not in (True, False, "auto"):
            raise InvalidInputError(f"binary must be True, False or 'auto', not {binary!r}.")

        self.base_url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.model_name = model_name
        self.version = version
        self.layout = layout
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self.backoff_max = float(backoff_max)
        self.concurrency = concurrency
        self.ends_in_softmax = bool(ends_in_softmax)
        self.extra_headers = dict(headers or {})
        self._scheme, self._netloc = parts.scheme, parts.netloc
        model_path = f"/v2/models/{urllib.parse.quote(model_name, safe='')}"
        if version is not None:
            model_path += f"/versions/{urllib.parse.quote(str(version), safe='')}"
        self._path_prefix = parts.path.rstrip("/")
        self._model_path = model_path
        self.model_url = self.base_url + model_path
        self.infer_url = self.model_url + "/infer"
        self._init_transport()

        meta = self._get_json(self._model_path, what="model metadata")
        self.metadata = meta
        self._pick_tensors(meta, input_name, output_name)
        self._pick_shapes(input_shape, num_classes)
        limit = max_batch_size or self._discover_max_batch(meta)
        self.max_batch_size = limit
        if binary == "auto":
            binary = self._server_has_binary()
        self.binary = bool(binary)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise InvalidInputError(f"batch_size must be a positive integer, got {batch_size!r}.")
        chunk = batch_size or limit or DEFAULT_BATCH_SIZE
        if limit is not None:
            chunk = min(chunk, limit)
        super().__init__(
            self._sample_shape,
            self._num_classes,
            output=output,
            batch_size=chunk,
            max_queries=max_queries,
            preprocess=preprocess,
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RemoteModel:
        """Build from a full model URL ``http://host:port/v2/models/NAME[/versions/V]``."""
        base, name, version = parse_v2_url(url)
        if version is not None and kwargs.get("version") not in (None, version):
            raise InvalidInputError(f"the URL names version {version!r} but version={kwargs['version']!r}.")
        kwargs.setdefault("version", version)
        return cls(base, name, **kwargs)

    def __repr__(self) -> str:
        return (
            f"RemoteModel({self.model_url!r}, input={self.input_name!r}{list(self._wire_shape)}, "
            f"output={self.output_name!r}, batch_size={self.batch_size}, binary={self.binary})"
        )

    # -- metadata -------------------------------------------------------------------------------
    def _pick_tensors(self, meta: dict[str, Any], input_name: str | None, output_name: str | None) -> None:
        inputs, outputs = meta.get("inputs"), meta.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or not inputs or not outputs:
            raise ModelLoadError(f"the metadata at {self.model_url} lists no inputs or no outputs.")
        self._input = self._pick(inputs, input_name, "input")
        self._output = self._pick(outputs, output_name, "output")
        self.input_name = str(self._input["name"])
        self.output_name = str(self._output["name"])
        dtype = self._input.get("datatype")
        if dtype not in _DTYPES:
            raise ModelLoadError(
                f"input {self.input_name!r} of {self.model_url} has datatype {dtype!r}; "
                f"onnxplain sends {', '.join(_DTYPES)} only."
            )
        self.input_datatype = str(dtype)

    def _pick(self, tensors: list[Any], name: str | None, kind: str) -> dict[str, Any]:
        names = [t.get("name") for t in tensors if isinstance(t, dict)]
        if name is None:
            if len(tensors) != 1:
                raise ModelLoadError(
                    f"{self.model_url} has {len(tensors)} {kind}s ({', '.join(map(str, names))}); "
                    f"choose one with {kind}_name=."
                )
            return tensors[0]
        for t in tensors:
            if isinstance(t, dict) and t.get("name") == name:
                return t
        raise ModelLoadError(
            f"{self.model_url} has no {kind} named {name!r} (it has {', '.join(map(str, names))})."
        )

    def _pick_shapes(self, input_shape: Sequence[int] | None, num_classes: int | None) -> None:
        shape = [int(d) for d in self._input.get("shape", [])]
        if len(shape) < 2:
            raise ModelLoadError(
                f"input {self.input_name!r} of {self.model_url} has shape {shape}; a leading batch axis "
                "and at least one sample axis are required."
            )
        self._batch_dim = shape[0]
        wire = shape[1:]
        if input_shape is not None:
            sample = tuple(int(d) for d in input_shape)
            want = self._to_wire_shape(sample)
            if len(want) != len(wire) or any(w not in (-1, d) for w, d in zip(wire, want, strict=True)):
                raise InvalidInputError(
                    f"input_shape {sample} does not fit the server's input shape {shape} ({self.layout})."
                )
            wire = list(want)
        elif any(d < 1 for d in wire):
            raise ModelLoadError(
                f"input {self.input_name!r} of {self.model_url} has dynamic axes {shape}; pass input_shape=."
            )
        self._wire_shape = tuple(wire)
        self._sample_shape = self._from_wire_shape(self._wire_shape)
        if num_classes is None:
            out_shape = [int(d) for d in self._output.get("shape", [])]
            if not out_shape or out_shape[-1] < 1:
                raise ModelLoadError(
                    f"output {self.output_name!r} of {self.model_url} has shape {out_shape} with no static "
                    "class axis; pass num_classes=."
                )
            num_classes = out_shape[-1]
        self._num_classes = int(num_classes)

    def _to_wire_shape(self, sample: tuple[int, ...]) -> tuple[int, ...]:
        if self.layout == "NHWC" and len(sample) == 3:
            c, h, w = sample
            return (h, w, c)
        return sample

    def _from_wire_shape(self, wire: tuple[int, ...]) -> tuple[int, ...]:
        if self.layout == "NHWC":
            if len(wire) != 3:
                raise InvalidInputError(f"layout 'NHWC' needs a (N,H,W,C) input, the server has {wire}.")
            h, w, c = wire
            return (c, h, w)
        return wire

    def _discover_max_batch(self, meta: dict[str, Any]) -> int | None:
        limit = meta.get("max_batch_size")
        if not isinstance(limit, int) or limit < 1:
            limit = None
            try:
                config = self._get_json(self._model_path + "/config", what="model config")
            except RemoteModelError as exc:
                if getattr(exc, "status", None) is None:
                    raise  # the server went away: that is not "no config endpoint"
                config = {}
            value = config.get("max_batch_size") if isinstance(config, dict) else None
            if isinstance(value, int) and value > 0:
                limit = value
        if limit is None and self._batch_dim > 0:
            limit = self._batch_dim
        return limit

    def _server_has_binary(self) -> bool:
        try:
            server = self._get_json("/v2", what="server metadata")
        except RemoteModelError as exc:
            if getattr(exc, "status", None) is None:
                raise
            return False
        extensions = server.get("extensions", []) if isinstance(server, dict) else []
        return isinstance(extensions, list) and "binary_tensor_data" in extensions

    # -- transport ------------------------------------------------------------------------------
    def _init_transport(self) -> None:
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._conn_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_local", "_conns", "_conn_lock", "_pool"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_transport()

    def close(self) -> None:
        """Close the keep-alive connections and the request thread pool."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._conn_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = cls(self._netloc, timeout=self.timeout)
            conn.connect()
            # http.client writes headers and a bytes body in one send, but a large body may still
            # leave in several segments: do not let Nagle's algorithm wait for the server's ACK
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
            with self._conn_lock:
                self._conns.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            with self._conn_lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            self._local.conn = None

    def _request(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> _Response:
        """One HTTP exchange with retries; returns any non-retryable answer, raises on exhaustion."""
        url = self.base_url + path
        full_path = self._path_prefix + path
        all_headers = {**self.extra_headers, **headers}
        attempts = self.retries + 1
        last: str = ""
        timed_out = False
        last_status: int | None = None
        for attempt in range(attempts):
            delay = min(self.backoff_max, self.backoff * (2**attempt))
            try:
                conn = self._connection()
                conn.request(method, full_path, body=body, headers=all_headers)
                resp = conn.getresponse()
                payload = resp.read()
                response = _Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
                if resp.will_close:
                    self._drop_connection()
            except TimeoutError as exc:
                self._drop_connection()
                timed_out, last_status = True, None
                last = f"no answer within {self.timeout:g} s ({exc or 'timed out'})"
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                timed_out, last_status = False, None
                last = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                status = response.status
                if not (status >= 500 or status in _RETRY_STATUSES):
                    return response
                timed_out, last_status = False, status
                last = f"HTTP {status} ({_error_text(response.body)})"
                retry_after = response.headers.get("retry-after", "")
                if retry_after.strip().isdigit():
                    delay = min(self.backoff_max, max(delay, float(retry_after)))
            if attempt + 1 < attempts and delay > 0:
                time.sleep(delay)
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        message = f"{method} {url} failed after {tries}: {last}."
        error = RemoteTimeoutError(message) if timed_out else RemoteModelError(message)
        error.url, error.status = url, last_status  # type: ignore[attr-defined]
        raise error

    def _get_json(self, path: str, *, what: str) -> Any:
        response = self._request("GET", path, None, {"Accept": "application/json"})
        url = self.base_url + path
        if response.status != 200:
            error = RemoteModelError(
                f"GET {url} ({what}) answered HTTP {response.status}: {_error_text(response.body)}."
            )
            error.url, error.status = url, response.status  # type: ignore[attr-defined]
            raise error
        try:
            return json.loads(response.body)
        except ValueError as exc:
            error = RemoteModelError(f"GET {url} ({what}) returned malformed JSON ({exc}).")
            error.url, error.status = url, response.status  # type: ignore[attr-defined]
            raise error from exc

    # -- one chunk ------------------------------------------------------------------------------
    def _encode(self, chunk: np.ndarray) -> tuple[bytes, dict[str, str]]:
        wire = chunk.transpose(0, 2, 3, 1) if self.layout == "NHWC" and chunk.ndim == 4 else chunk
        wire = np.ascontiguousarray(wire, dtype=_DTYPES[self.input_datatype])
        tensor: dict[str, Any] = {
            "name": self.input_name,
            "shape": list(wire.shape),
            "datatype": self.input_datatype,
        }
        request: dict[str, Any] = {"inputs": [tensor], "outputs": [{"name": self.output_name}]}
        if not self.binary:
            # float32 -> Python float is exact and repr round-trips, so JSON loses no bits
            tensor["data"] = wire.ravel().tolist()
            return json.dumps(request, separators=(",", ":")).encode(), {"Content-Type": "application/json"}
        raw = wire.tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
        request["outputs"][0]["parameters"] = {"binary_data": True}
        header = json.dumps(request, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/octet-stream", BINARY_HEADER: str(len(header))}
        return header + raw, headers

    def _decode(self, response: _Response, n: int) -> np.ndarray:
        url = self.infer_url
        body = response.body
        header_len = response.headers.get(BINARY_HEADER.lower())
        try:
            if header_len is not None:
                split = int(header_len)
                if not 0 <= split <= len(body):
                    raise ValueError(f"{BINARY_HEADER} {split} exceeds the body of {len(body)} bytes")
                doc, binary = json.loads(body[:split]), body[split:]
            else:
                doc, binary = json.loads(body), b""
        except ValueError as exc:
            raise RemoteModelError(f"POST {url} returned malformed JSON ({exc}).") from exc
        outputs = doc.get("outputs") if isinstance(doc, dict) else None
        if not isinstance(outputs, list):
            raise RemoteModelError(f"POST {url} answered without an 'outputs' list.")
        offset = 0
        for out in outputs:
            if not isinstance(out, dict):
                raise RemoteModelError(f"POST {url} answered with a malformed output entry.")
            size = (out.get("parameters") or {}).get("binary_data_size")
            if out.get("name") != self.output_name:
                offset += int(size or 0)
                continue
            dtype = _DTYPES.get(str(out.get("datatype")))
            if dtype is None:
                raise RemoteModelError(
                    f"POST {url}: output {self.output_name!r} has datatype {out.get('datatype')!r}, not a float type."
                )
            if size is not None:
                size = int(size)
                if offset + size > len(binary) or size % dtype.itemsize:
                    raise RemoteModelError(f"POST {url}: output {self.output_name!r} is truncated.")
                values = np.frombuffer(binary, dtype=dtype, count=size // dtype.itemsize, offset=offset)
            else:
                data = out.get("data")
                if not isinstance(data, list):
                    raise RemoteModelError(f"POST {url}: output {self.output_name!r} carries no data.")
                try:
                    values = np.asarray(data, dtype=np.float64).ravel()
                except (TypeError, ValueError) as exc:
                    raise RemoteModelError(
                        f"POST {url}: output {self.output_name!r} holds non-numbers."
                    ) from exc
            if values.size != n * self.num_classes:
                raise RemoteModelError(
                    f"POST {url}: output {self.output_name!r} has {values.size} values for {n} samples "
                    f"of {self.num_classes} classes."
                )
            return values.astype(np.float32).reshape(n, self.num_classes)
        raise RemoteModelError(f"POST {url} answered without the output {self.output_name!r}.")

    def _forward(self, chunk: np.ndarray) -> np.ndarray:
        n = len(chunk)
        fixed = self._batch_dim if self._batch_dim > 0 else None
        if fixed is not None and n < fixed:
            # a server with a static batch axis needs full batches: repeat the last sample
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        body, headers = self._encode(chunk)
        response = self._request("POST", self._model_path + "/infer", body, headers)
        if response.status != 200:
            error = RemoteModelError(
                f"POST {self.infer_url} answered HTTP {response.status}: {_error_text(response.body)}."
            )
            error.url, error.status = self.infer_url, response.status  # type: ignore[attr-defined]
            raise error
        return self._decode(response, len(chunk))[:n]

    # -- the door -------------------------------------------------------------------------------
    def best_batch_size(self) -> int:
        """``batch_size · concurrency``: a call of this size keeps ``concurrency`` requests in flight."""
        return self._chunk_size() * self.concurrency

    def _checked_chunk(self, start: int, chunk: np.ndarray) -> np.ndarray:
        if self.preprocess is not None:
            chunk = self.preprocess(chunk)
        return self.check_scores(self._forward(chunk), len(chunk), start, source=self.model_url)

    def __call__(self, batch: Any) -> np.ndarray:
        """Score a batch; chunks go out ``concurrency`` at a time and come back in order.

        Budget, counting and checks follow :class:`BaseQueryModel`: the budget is checked for the
        whole call before anything is sent; ``n_queries``/``n_calls`` grow only by chunks answered
        with valid scores (also when another chunk of the same call fails); ``model_seconds`` is
        the wall time spent waiting for the server, so overlapping requests are not summed.
        """
        if not isinstance(batch, np.ndarray):
            try:
                batch = np.asarray(batch, dtype=np.float32)
            except (TypeError, RuntimeError) as exc:
                raise InvalidInputError(f"RemoteModel takes host (numpy) arrays; {exc}") from exc
        batch = self.check_input(batch)
        n = int(batch.shape[0])
        self.admit(n)
        if n == 0:
            return np.empty((0, self.num_classes), np.float32)
        step = self._chunk_size()
        starts = list(range(0, n, step))
        results: list[np.ndarray | None] = [None] * len(starts)
        first_error: BaseException | None = None
        t0 = time.perf_counter()
        try:
            if self.concurrency == 1 or len(starts) == 1:
                for i, s in enumerate(starts):
                    try:
                        results[i] = self._checked_chunk(s, batch[s : s + step])
                    except Exception as exc:
                        first_error = exc
                        break
            else:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="onnxplain-remote")
                futures: list[Future[np.ndarray]] = [
                    self._pool.submit(self._checked_chunk, s, batch[s : s + step]) for s in starts
                ]
                done, pending = wait(futures, return_when=FIRST_EXCEPTION)
                for f in pending:
                    f.cancel()  # not started yet: never sent
                wait([f for f in pending if not f.cancelled()])
                for i, f in enumerate(futures):
                    if f.cancelled():
                        continue
                    exc = f.exception()
                    if exc is None:
                        results[i] = f.result()
                    elif first_error is None:
                        first_error = exc
        finally:
            self.model_seconds += time.perf_counter() - t0
            answered = [r for r in results if r is not None]
            self.n_calls += len(answered)
            self.n_queries += sum(len(r) for r in answered)
        if first_error is not None:
            raise first_error
        return self._head(np.concatenate(results, axis=0))  # type: ignore[arg-type]


def _error_text(body: bytes, limit: int = 200) -> str:
    """The server's error message: the v2 ``{"error": ...}`` field, else the start of the body."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and "error" in doc:
            return str(doc["error"])[:limit]
    except ValueError:
        pass
    text = body[:limit].decode("utf-8", "replace").strip()
    return text or "empty body"
