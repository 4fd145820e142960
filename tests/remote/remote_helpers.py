"""Helpers of the remote tests: a v2 server with injectable faults, tiny ONNX models."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from onnxplain.serve import V2Handler, V2Server


class FaultHandler(V2Handler):
    """Answers ``infer`` normally unless the server's fault queue says otherwise.

    Faults: ``"503"``, ``"429"`` (with ``Retry-After: 0``), ``"400"``, ``"slow"`` (sleep past
    the client's timeout, then answer), ``"badjson"`` (HTTP 200 with a truncated JSON body),
    ``"drop"`` (close the connection without answering), ``"nan"`` (scores with a NaN),
    ``"short"`` (one sample's scores missing), ``"barrier"`` (wait until two requests are inside
    at once: proves requests really overlap).
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
        body = self.read_body()
        with app.lock:
            app.attempts += 1
            fault = app.faults.popleft() if app.faults else None
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
        if fault in ("nan", "short"):
            import json

            payload, _ = app.infer(body, None)
            doc = json.loads(payload)  # these two faults are used with JSON requests
            data = doc["outputs"][0]["data"]
            if fault == "nan":
                data[3] = float("nan")
                body_out = json.dumps(doc).encode()  # NaN is written as the bare token NaN
            else:
                del data[-app.num_classes :]
                body_out = json.dumps(doc).encode()
            return self.send_body(200, body_out, {"Content-Type": "application/json"})
        if fault == "barrier":
            app.barrier.wait(timeout=10)
            return self.answer_infer(body)
        raise AssertionError(f"unknown fault {fault!r}")


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

    def reset(self) -> None:
        """Zero the counters once every request still inside (e.g. a "slow" one) has finished."""
        deadline = time.monotonic() + 10
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            self.faults.clear()
            self.attempts = 0
            self.n_requests = 0
            self.n_samples = 0
            self.barrier.reset()


def tiny_model(path: Path, *, batch: int | str = "N", nhwc: bool = False, outputs: int = 1) -> Path:
    """A small tanh MLP on (batch, 1, 6, 6) — or (batch, 6, 6, 3) NHWC — with 4 logits."""
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
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)
    nodes = []
    src = "image"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["image"], ["chw"], perm=[0, 3, 1, 2]))
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
