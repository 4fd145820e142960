"""Helpers of the remote tests: a v2 server with injectable faults, tiny ONNX models."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxplain.serving import V2Handler, V2Server


class FaultHandler(V2Handler):
    """Answers ``infer`` normally unless the server's fault queue says otherwise.

    Faults: ``"503"``, ``"429"`` (with ``Retry-After: 0``), ``"400"``, ``"slow"`` (sleep past
    the client's timeout, then answer), ``"badjson"`` (HTTP 200 with a truncated JSON body),
    ``"drop"`` (close the connection without answering), ``"nan"`` (scores with a NaN),
    ``"short"`` (one sample's scores missing), ``"barrier"`` (wait until two requests are inside
    at once: proves requests really overlap), ``"rows"`` (one row fewer, shape saying so),
    ``"shape"`` (9 scores a row, shape saying so), ``"int"`` (an INT64 output), ``"reset"``
    (read half the body, then reset the connection: RST, no answer).

    ``server.chaos`` = ``(p503, max_delay, rng)`` adds random faults to every request without a
    queued one: a 503 with probability ``p503``, else a delay uniform in [0, max_delay) s.
    """

    def do_POST(self) -> None:  # noqa: N802
        app: FaultyServer = self.app  # type: ignore[assignment]
        with app.lock:
            app.inflight += 1
        try:
            self._post(app)
        finally:
            with app.lock:
                app.inflight -= 1

    def _post(self, app: FaultyServer) -> None:
        with app.lock:
            fault = app.faults.popleft() if app.faults else None
        if fault == "reset":
            return self._reset(app)
        body = self.read_body()
        with app.lock:
            app.attempts += 1
            if fault is None and app.chaos is not None:
                p503, max_delay, rng = app.chaos
                fault = "503" if rng.random() < p503 else None
                delay = rng.random() * max_delay
        if fault is None and app.chaos is not None:
            time.sleep(delay)
        if fault is None:
            return self.answer_infer(body)
        if fault == "503":
            return self.send_error_json(503, "server overloaded")
        if fault == "429":
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            payload = b'{"error": "too many requests"}'
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return None
        if fault == "400":
            return self.send_error_json(400, "tensor 'pixels' is malformed")
        if fault == "slow":
            time.sleep(app.slow_seconds)
            return self.answer_infer(body)
        if fault == "badjson":
            return self.send_body(
                200, b'{"outputs": [{"name": "logits", "data": [0.1,', {"Content-Type": "application/json"}
            )
        if fault == "drop":
            self.close_connection = True
            return None
        if fault in ("nan", "short", "rows", "shape", "int"):
            payload, _ = app.infer(body, None)
            doc = json.loads(payload)  # these faults are used with JSON requests
            out = doc["outputs"][0]
            data = out["data"]
            if fault == "nan":
                data[3] = float("nan")  # json writes NaN as the bare token NaN
            elif fault == "short":
                del data[-app.num_classes :]
            elif fault == "rows":
                del data[-app.num_classes :]
                out["shape"][0] -= 1
            elif fault == "shape":
                n = out["shape"][0]
                out["data"] = np.asarray(data).reshape(n, -1)[:, :9].ravel().tolist()
                out["shape"] = [n, 9]
            else:
                out["datatype"], out["data"] = "INT64", [int(v) for v in data]
            return self.send_body(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        if fault == "barrier":
            app.barrier.wait(timeout=10)
            return self.answer_infer(body)
        raise AssertionError(f"unknown fault {fault!r}")

    def _reset(self, app: FaultyServer) -> None:
        """Connection reset mid-request: half the body read, then RST (SO_LINGER 0) and no answer."""
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length // 2)
        with app.lock:
            app.attempts += 1
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class FaultyServer(V2Server):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, handler=FaultHandler, **kwargs)
        self.faults: deque[str] = deque()
        self.lock = threading.Lock()
        self.attempts = 0
        self.inflight = 0
        self.slow_seconds = 0.6
        self.barrier = threading.Barrier(2)
        self.num_classes = 10
        self.chaos: tuple[float, float, np.random.Generator] | None = None

    def reset(self) -> None:
        """Zero the counters once every request still inside (e.g. a "slow" one) has finished."""
        deadline = time.monotonic() + 10
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            self.faults.clear()
            self.chaos = None
            self.attempts = 0
            self.n_requests = 0
            self.n_samples = 0
            self.barrier.reset()


def tiny_model(
    path: Path, *, batch: int | str = "N", nhwc: bool = False, outputs: int = 1, double: bool = False
) -> Path:
    """A small tanh MLP on (batch, 1, 6, 6) — or (batch, 6, 6, 3) NHWC — with 4 logits.

    ``double``: the input is float64 (cast to float32 inside the graph)."""
    rng = np.random.default_rng(0)
    c, h, w = (3, 6, 6) if nhwc else (1, 6, 6)
    d = c * h * w
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.4, (d, 12)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, 12).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.4, (12, 4)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b2"),
    ]
    shape = [batch, h, w, c] if nhwc else [batch, c, h, w]
    x = helper.make_tensor_value_info("image", TensorProto.DOUBLE if double else TensorProto.FLOAT, shape)
    nodes = []
    src = "image"
    if double:
        nodes.append(helper.make_node("Cast", ["image"], ["image32"], to=TensorProto.FLOAT))
        src = "image32"
    if nhwc:
        nodes.append(helper.make_node("Transpose", [src], ["chw"], perm=[0, 3, 1, 2]))
        src = "chw"
    nodes += [
        helper.make_node("Flatten", [src], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w1", "b1"], ["hid"]),
        helper.make_node("Tanh", ["hid"], ["a"]),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["scores"]),
    ]
    outs = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 4])]
    if outputs == 2:
        nodes.append(helper.make_node("Softmax", ["scores"], ["probs"], axis=1))
        outs.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 4]))
    graph = helper.make_graph(nodes, "tiny", [x], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, path)
    return path


def softmax_model(source: Path, path: Path) -> Path:
    """``source`` (one output of logits) with a Softmax appended: a model that ends in probabilities."""
    model = onnx.load(source)
    out = model.graph.output[0]
    logits = out.name
    for node in model.graph.node:
        node.output[:] = [f"{o}_pre" if o == logits else o for o in node.output]
    model.graph.node.append(helper.make_node("Softmax", [f"{logits}_pre"], ["probs"], axis=1))
    out.name = "probs"
    onnx.save(model, path)
    return path


class MetadataServer(V2Server):
    """A v2 server whose model metadata is ``"full"``, ``"empty"`` (MLServer without declared
    tensors: empty lists), ``"partial"`` (names and datatype, no shapes) or ``"none"`` (HTTP 404,
    as from a server with no metadata endpoint); never a Triton ``/config``."""

    def __init__(self, *args, metadata: str = "full", **kwargs) -> None:
        super().__init__(*args, handler=_MetadataHandler, **kwargs)
        self.metadata_mode = metadata

    def model_metadata(self) -> dict:
        meta = super().model_metadata()
        if self.metadata_mode == "empty":
            meta["inputs"], meta["outputs"] = [], []
        elif self.metadata_mode == "partial":
            meta["inputs"] = [{"name": t["name"], "datatype": t["datatype"]} for t in self.inputs]
            meta["outputs"] = [{"name": t["name"], "shape": [-1, -1]} for t in self.outputs]
        return meta


class _MetadataHandler(V2Handler):
    def do_GET(self) -> None:  # noqa: N802
        app: MetadataServer = self.app  # type: ignore[assignment]
        path = self.path.rstrip("/")
        if path.endswith("/config") or (app.metadata_mode == "none" and path.startswith("/v2/models/")):
            return self.send_error_json(404, "Not Found")
        return super().do_GET()
