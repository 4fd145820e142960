"""The v2 wire format shared by RemoteModel and V2Server (onnxplain.serving.protocol)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxplain.serving.protocol import (
    BINARY_HEADER,
    MalformedJSON,
    ProtocolError,
    decode_scores,
    encode_infer_request,
    error_text,
    model_path,
    split_body,
)


def hard_floats() -> np.ndarray:
    """float32 values whose decimal form is long: subnormals, extremes, values near 1."""
    info = np.finfo(np.float32)
    special = [info.tiny, info.tiny / 7, info.max, -info.max, info.eps, 1 - info.epsneg, 1 / 3, -0.0, 0.1]
    rng = np.random.default_rng(0).standard_normal(91).astype(np.float32) * 1e-30
    return np.concatenate([np.array(special, np.float32), rng]).reshape(4, 25)


@pytest.mark.parametrize("binary", [False, True])
def test_request_round_trips_every_bit(binary) -> None:
    x = hard_floats()
    body, headers = encode_infer_request(x, input_name="in", datatype="FP32", output_name="out", binary=binary)
    doc, tail = split_body(body, headers.get(BINARY_HEADER))
    entry = doc["inputs"][0]
    assert entry["shape"] == [4, 25] and entry["datatype"] == "FP32"
    assert doc["outputs"] == [{"name": "out", **({"parameters": {"binary_data": True}} if binary else {})}]
    if binary:
        assert entry["parameters"] == {"binary_data_size": 400} and len(tail) == 400
        back = np.frombuffer(tail, "<f4")
    else:  # decoded by the stdlib alone: the JSON text carries the exact float32 values
        back = np.asarray(json.loads(body)["inputs"][0]["data"], np.float32)
    assert back.view(np.uint32).tolist() == x.ravel().view(np.uint32).tolist()


def answer(values: np.ndarray, datatype: str, *, shape=None, binary=False, name="out"):
    entry = {"name": name, "datatype": datatype, "shape": list(values.shape) if shape is None else shape}
    if binary:
        raw = values.astype(values.dtype.newbyteorder("<")).tobytes()
        entry["parameters"] = {"binary_data_size": len(raw)}
        head = json.dumps({"outputs": [{"name": "other", "datatype": "FP32", "parameters": {"binary_data_size": 8}}, entry]})
        return head.encode() + b"\0" * 8 + raw, str(len(head))
    entry["data"] = values.ravel().tolist()
    return json.dumps({"outputs": [entry]}).encode(), None


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
@pytest.mark.parametrize("binary", [False, True])
def test_scores_are_read_from_any_float_output(datatype, binary) -> None:
    dtype = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[datatype]
    values = np.random.default_rng(1).standard_normal((3, 5)).astype(dtype)
    scores, seen = decode_scores(*answer(values, datatype, binary=binary), "out", sent=3, classes=5)
    assert seen == datatype and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, values.astype(np.float32))


@pytest.mark.parametrize(
    ("body", "header", "error", "message"),
    [
        (b'{"outputs": [', None, MalformedJSON, "Expecting"),
        (b"{}", "99", ProtocolError, "Inference-Header-Content-Length 99 exceeds the body of 2 bytes"),
        (b'{"outputs": {}}', None, ProtocolError, "no 'outputs' list"),
        (b'{"outputs": [{"name": "x", "datatype": "FP32", "data": [1]}]}', None, ProtocolError, "no output 'out'"),
        (b'{"outputs": [{"name": "out", "datatype": "BYTES", "data": ["a"]}]}', None, ProtocolError, "datatype 'BYTES'"),
        (b'{"outputs": [{"name": "out", "datatype": "FP32"}]}', None, ProtocolError, "carries no data"),
        (b'{"outputs": [{"name": "out", "datatype": "FP32", "data": ["a"]}]}', None, ProtocolError, "non-numbers"),
        (
            b'{"outputs": [{"name": "out", "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}',
            None,
            ProtocolError,
            "declares 8 binary bytes, which do not fit",
        ),
    ],
)
def test_malformed_answers(body, header, error, message) -> None:
    with pytest.raises(error, match=message):
        decode_scores(body, header, "out", sent=1, classes=1)


def test_error_text_and_paths() -> None:
    assert error_text(b'{"error": "bad tensor"}') == "bad tensor"
    assert error_text(b'{"detail": "Not Found"}') == "Not Found"  # FastAPI servers (MLServer)
    assert error_text(b"plain text\n") == "plain text" and error_text(b"") == "empty body"
    assert model_path("a b/c") == "/v2/models/a%20b%2Fc"
    assert model_path("m", "2") == "/v2/models/m/versions/2"


def test_client_and_server_import_neither_torch_nor_onnxruntime_nor_mlserver() -> None:
    import subprocess
    import sys

    code = (
        "import sys, onnxplain.models.remote, onnxplain.serving, onnxplain.serve, onnxplain.serving.protocol\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'mlserver') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
