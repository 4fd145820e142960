"""The loopback v2 server itself: protocol answers and its 4xx paths, spoken to with raw HTTP."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse

import numpy as np
import pytest

from onnxplain.errors import ModelLoadError
from onnxplain.models import RemoteModel
from onnxplain.models.onnx import OnnxModel
from onnxplain.serving import V2Server

pytestmark = pytest.mark.filterwarnings("ignore:.*answers with (logits|probabilities).*:UserWarning")


def call(server: V2Server, method: str, path: str, body: bytes | None = None, headers=None):
    netloc = urllib.parse.urlsplit(server.url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def infer_json(server: V2Server, tensor: dict, outputs=None):
    doc = {"inputs": [tensor]}
    if outputs is not None:
        doc["outputs"] = outputs
    return call(
        server,
        "POST",
        "/v2/models/mnist/infer",
        json.dumps(doc).encode(),
        {"Content-Type": "application/json"},
    )


def test_metadata_and_health(server) -> None:
    status, _, body = call(server, "GET", "/v2")
    assert status == 200 and "binary_tensor_data" in json.loads(body)["extensions"]
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/mnist/ready"):
        assert call(server, "GET", path)[0] == 200
    status, _, body = call(server, "GET", "/v2/models/mnist")
    meta = json.loads(body)
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert meta["outputs"][0]["shape"] == [-1, 10]
    assert json.loads(call(server, "GET", "/v2/models/mnist/config")[2])["max_batch_size"] == 16


def test_json_infer_matches_onnx_runtime(server, demo_path) -> None:
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    tensor = {"name": "pixels", "datatype": "FP32", "shape": [3, 1, 28, 28], "data": x.ravel().tolist()}
    status, headers, body = infer_json(server, tensor, [{"name": "logits"}])
    assert status == 200 and "Inference-Header-Content-Length" not in headers
    out = json.loads(body)["outputs"][0]
    ref = OnnxModel(demo_path, device="cpu", output="logits", batch_size=4)(x)
    np.testing.assert_array_equal(np.asarray(out["data"], np.float32).reshape(out["shape"]), ref)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (
            {"name": "x", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 784},
            "unknown input 'x'",
        ),
        (
            {"name": "pixels", "datatype": "INT64", "shape": [1, 1, 28, 28], "data": [0] * 784},
            "datatype 'INT64'",
        ),
        ({"name": "pixels", "datatype": "FP32", "shape": [1, 1, 28, 27], "data": [0.0] * 756}, "shape"),
        ({"name": "pixels", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [0.0] * 10}, "10 values"),
        (
            {"name": "pixels", "datatype": "FP32", "shape": [17, 1, 28, 28], "data": [0.0] * 17 * 784},
            "max_batch_size 16",
        ),
        ({"name": "pixels", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": ["a"] * 784}, "non-numbers"),
        ({"name": "pixels", "datatype": "FP32", "shape": "big"}, "invalid shape"),
    ],
)
def test_bad_requests_are_400(fresh, tensor, message) -> None:
    status, _, body = infer_json(fresh, tensor)
    assert status == 400 and message in json.loads(body)["error"]
    assert fresh.n_requests == 0


def test_other_bad_requests(server) -> None:
    status, _, body = call(server, "POST", "/v2/models/mnist/infer", b"{not json")
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]
    status, _, body = call(
        server, "POST", "/v2/models/mnist/infer", b"{}", {"Inference-Header-Content-Length": "99"}
    )
    assert status == 400 and "exceeds the body" in json.loads(body)["error"]
    tensor = {
        "name": "pixels",
        "datatype": "FP32",
        "shape": [1, 1, 28, 28],
        "parameters": {"binary_data_size": 8},
    }
    head = json.dumps({"inputs": [tensor]}).encode()
    status, _, body = call(
        server,
        "POST",
        "/v2/models/mnist/infer",
        head + b"\0" * 8,
        {"Inference-Header-Content-Length": str(len(head))},
    )
    assert status == 400 and "do not fit" in json.loads(body)["error"]
    assert call(server, "POST", "/v2/models/other/infer", b"{}")[0] == 404
    assert call(server, "GET", "/v2/models/mnist/versions/2")[0] == 404
    assert call(server, "GET", "/v2/nothing")[0] == 404
    assert call(server, "POST", "/v2/models/mnist/ready", b"{}")[0] == 404


def test_missing_model_file(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        V2Server(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="could not be loaded by ONNX Runtime"):
        V2Server(bad)


@pytest.mark.parametrize("module", ["onnxplain.serving", "onnxplain.serve"])  # the second: the old name
def test_python_m_onnxplain_serve(demo_path, module) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            str(demo_path),
            "--name",
            "digits",
            "--port",
            str(port),
            "--threads",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/v2/models/digits" in line
        deadline = time.monotonic() + 20
        while True:
            try:
                model = RemoteModel.from_url(f"http://127.0.0.1:{port}/v2/models/digits", retries=0)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with model:
            assert model(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_start_twice_then_stop_returns(demo_path) -> None:
    """start() while serving is a no-op, so ``with server.start():`` cannot leave a thread behind."""
    server = V2Server(demo_path, name="demo", port=0)
    with server.start():
        thread = server._thread
        assert server.start()._thread is thread
    assert not thread.is_alive()
