"""A small KServe v2 (Open Inference Protocol) HTTP server for one ONNX model, on ONNX Runtime.

Enough of the protocol to stand in for Triton or KServe when trying :class:`RemoteModel` and to
test it on loopback: server/model metadata, readiness, Triton's ``/config`` (for
``max_batch_size``) and ``infer`` in JSON or with the binary tensor extension. It is a stdlib
``ThreadingHTTPServer`` (one thread per connection, keep-alive), not a production server: no TLS,
no authentication, no dynamic batching.

    python -m onnxplain.serving model.onnx --name mnist --port 8000
    # then: RemoteModel.from_url("http://127.0.0.1:8000/v2/models/mnist")
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain.errors import ModelLoadError
from onnxplain.serving.protocol import (
    BINARY_EXTENSION,
    BINARY_HEADER,
    CONFIG,
    HEALTH_PATHS,
    INFER,
    MODEL_ROUTE,
    ORT_TO_V2,
    READY,
    SERVER_PATH,
    MalformedJSON,
    ProtocolError,
    decode_tensor,
    encode_document,
    encode_tensors,
    entry_shape,
    model_path,
    split_body,
)

__all__ = ["V2Handler", "V2Server", "main"]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class V2Server:
    """Serve ``model_path`` under ``/v2/models/{name}`` on ``host:port`` (``port=0``: pick a free one).

    Args:
        model_path: an ONNX file.
        name: model name in the URLs; default the file's stem.
        version: the one version served (also reachable without ``/versions/…``).
        host / port: where to listen; loopback by default.
        max_batch_size: largest batch accepted (HTTP 400 beyond it); reported in the metadata and
            in Triton's ``/config``. ``None``: unlimited.
        binary: advertise and accept the binary tensor extension.
        threads: ONNX Runtime intra-op threads (0 = ORT's default).
        handler: request handler class (tests subclass :class:`V2Handler` to inject faults).

    Counters ``n_requests`` (infer requests received) and ``n_samples`` (samples computed) let
    tests check what reached the model.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        name: str | None = None,
        version: str = "1",
        host: str = "127.0.0.1",
        port: int = 0,
        max_batch_size: int | None = None,
        binary: bool = True,
        threads: int = 0,
        handler: type[V2Handler] | None = None,
    ) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise ModelLoadError(f"{path} does not exist or is not a file.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for every kind of bad file
            raise ModelLoadError(f"{path} could not be loaded by ONNX Runtime ({exc}).") from exc
        self.name = name or path.stem
        self.version = str(version)
        self.max_batch_size = max_batch_size
        self.binary = binary
        self.inputs = [self._tensor_meta(t) for t in self.session.get_inputs()]
        self.outputs = [self._tensor_meta(t) for t in self.session.get_outputs()]
        self.n_requests = 0
        self.n_samples = 0
        self._count_lock = threading.Lock()
        self.httpd = _QuietServer((host, port), handler or V2Handler)
        self.httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @staticmethod
    def _tensor_meta(t: Any) -> dict[str, Any]:
        shape = [d if isinstance(d, int) and d > 0 else -1 for d in t.shape]
        return {"name": t.name, "datatype": ORT_TO_V2.get(t.type, t.type), "shape": shape}

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def model_url(self) -> str:
        """``{url}/v2/models/{name}``, what :meth:`RemoteModel.from_url` takes."""
        return self.url + model_path(self.name)

    def start(self) -> V2Server:
        """Serve in a background thread; returns self (a second call while serving does nothing)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="onnxplain-v2", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> V2Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- protocol -------------------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        from onnxplain import __version__

        extensions = ["model_configuration"] + ([BINARY_EXTENSION] if self.binary else [])
        return {"name": "onnxplain", "version": __version__, "extensions": extensions}

    def model_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.name,
            "versions": [self.version],
            "platform": "onnxruntime_onnx",
            "inputs": self.inputs,
            "outputs": self.outputs,
        }
        return meta

    def model_config(self) -> dict[str, Any]:
        return {"name": self.name, "platform": "onnxruntime_onnx", "max_batch_size": self.max_batch_size or 0}

    def infer(self, body: bytes, header_length: int | None) -> tuple[bytes, dict[str, str]]:
        """Run one inference request; returns (response body, extra headers)."""
        try:
            request, binary = split_body(body, header_length)
        except MalformedJSON as exc:
            raise _BadRequest(400, f"the request is not valid JSON ({exc})") from exc
        except ProtocolError as exc:
            raise _BadRequest(400, str(exc)) from exc
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
            raise _BadRequest(400, "the request has no 'inputs' list")
        feeds = self._read_inputs(request["inputs"], binary)
        wanted = request.get("outputs") or [{"name": t["name"]} for t in self.outputs]
        outputs_meta = {t["name"]: t for t in self.outputs}
        for spec in wanted:
            if not isinstance(spec, dict) or spec.get("name") not in outputs_meta:
                raise _BadRequest(400, f"unknown output {spec.get('name') if isinstance(spec, dict) else spec!r}")
        results = self.session.run([o["name"] for o in wanted], feeds)
        with self._count_lock:
            self.n_requests += 1
            self.n_samples += int(next(iter(feeds.values())).shape[0])
        all_binary = bool((request.get("parameters") or {}).get("binary_data_output"))
        entries = [{"name": o["name"], "datatype": outputs_meta[o["name"]]["datatype"]} for o in wanted]
        as_binary = [
            self.binary and (all_binary or bool((o.get("parameters") or {}).get("binary_data"))) for o in wanted
        ]
        chunks, outputs = encode_tensors(entries, [np.asarray(r) for r in results], as_binary)
        doc: dict[str, Any] = {"model_name": self.name, "model_version": self.version, "outputs": outputs}
        if "id" in request:
            doc["id"] = request["id"]
        return encode_document(doc, chunks)

    def _read_inputs(self, tensors: list[Any], binary: bytes) -> dict[str, np.ndarray]:
        """The request's input tensors as ONNX Runtime feeds, each checked against the metadata."""
        feeds: dict[str, np.ndarray] = {}
        known = {t["name"]: t for t in self.inputs}
        offset = 0
        for tensor in tensors:
            name = tensor.get("name") if isinstance(tensor, dict) else None
            if name not in known:
                raise _BadRequest(400, f"unknown input {name!r}")
            datatype = tensor.get("datatype")
            if datatype != known[name]["datatype"]:
                raise _BadRequest(
                    400, f"input {name!r} has datatype {datatype!r}, expected {known[name]['datatype']!r}"
                )
            try:
                shape = entry_shape(tensor)
                if shape is None:
                    raise ProtocolError(f"{name!r} has an invalid shape None")
                expected = known[name]["shape"]
                if len(shape) != len(expected) or any(e not in (-1, d) for e, d in zip(expected, shape, strict=True)):
                    raise ProtocolError(f"input {name!r} has shape {shape}, the model takes {expected}")
                if self.max_batch_size is not None and shape and shape[0] > self.max_batch_size:
                    raise ProtocolError(f"batch of {shape[0]} exceeds max_batch_size {self.max_batch_size}")
                values, _, offset = decode_tensor(tensor, binary, offset, "input", int(np.prod(shape)))
                if values.size != int(np.prod(shape)):
                    raise ProtocolError(f"input {name!r} has {values.size} values for shape {shape}")
            except ProtocolError as exc:
                raise _BadRequest(400, str(exc)) from exc
            feeds[name] = values.reshape(shape)
        if set(feeds) != set(known):
            raise _BadRequest(400, f"the model needs inputs {sorted(known)}")
        return feeds


class V2Handler(BaseHTTPRequestHandler):
    """Routes the v2 endpoints to the :class:`V2Server` in ``self.server.app``."""

    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server_version = "onnxplain-v2"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK hold the body back ~40 ms on every response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def app(self) -> V2Server:
        return self.server.app  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: one line per query would drown everything else

    def send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, doc: Any) -> None:
        self.send_body(status, json.dumps(doc).encode())

    def send_error_json(self, status: int, message: str) -> None:
        self.send_json(status, {"error": message})

    def _model_route(self) -> str | None:
        """What follows ``/v2/models/NAME[/versions/V]`` ("", "/infer", ...); None if no such path.

        Raises ``_BadRequest(404)`` for another model's name or version.
        """
        match = MODEL_ROUTE.match(self.path.split("?", 1)[0].rstrip("/"))
        if match is None:
            return None
        if match["name"] != self.app.name:
            raise _BadRequest(404, f"unknown model {match['name']!r}")
        if match["version"] not in (None, self.app.version):
            raise _BadRequest(404, f"unknown version {match['version']!r} of model {self.app.name!r}")
        return match["rest"] or ""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == SERVER_PATH:
            return self.send_json(200, self.app.server_metadata())
        if path in HEALTH_PATHS:
            return self.send_body(200, b"")
        try:
            rest = self._model_route()
        except _BadRequest as exc:
            return self.send_error_json(exc.status, str(exc))
        if rest == "":
            return self.send_json(200, self.app.model_metadata())
        if rest == READY:
            return self.send_body(200, b"")
        if rest == CONFIG:
            return self.send_json(200, self.app.model_config())
        return self.send_error_json(404, f"no endpoint {path}")

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self.answer_infer(self.read_body())

    def answer_infer(self, body: bytes) -> None:
        """Route a POST whose body has been read: ``…/infer`` runs the model, anything else is 404."""
        try:
            if self._model_route() != INFER:
                raise _BadRequest(404, f"no endpoint {self.path}")
            header_length = self.headers.get(BINARY_HEADER)
            length = int(header_length) if header_length is not None else None
            payload, headers = self.app.infer(body, length)
        except _BadRequest as exc:
            return self.send_error_json(exc.status, str(exc))
        except ValueError as exc:
            return self.send_error_json(400, f"bad request ({exc})")
        except Exception as exc:  # an ONNX Runtime failure is the server's fault: 500
            return self.send_error_json(500, f"inference failed ({type(exc).__name__}: {exc})")
        return self.send_body(200, payload, headers)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that hung up (e.g. after its own timeout) is not a server error
        super().handle_error(request, client_address)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m onnxplain.serving MODEL.onnx [--name N] [--host H] [--port P] [--max-batch-size B]``."""
    parser = argparse.ArgumentParser(prog="onnxplain serve", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="ONNX file to serve")
    parser.add_argument("--name", default=None, help="model name in the URL (default: file stem)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch-size", type=int, default=None)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    parser.add_argument("--no-binary", action="store_true", help="JSON only (no binary tensor extension)")
    args = parser.parse_args(argv)
    server = V2Server(
        args.model,
        name=args.name,
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        binary=not args.no_binary,
        threads=args.threads,
    )
    print(f"serving {args.model} at {server.model_url}", flush=True)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
