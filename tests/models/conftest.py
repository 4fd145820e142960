"""A small exported CNN and its int8 QDQ quantisation, built once for the input-type tests."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import pytest

CNN_SHAPE = (3, 16, 16)


@pytest.fixture(scope="session")
def float_and_qdq_cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """(float32 ONNX, int8 QDQ ONNX) of a seeded 2-conv CNN with 4 classes.

    The float model is exported from torch (TorchScript exporter: a second, where the dynamo
    exporter of ``onnxplain.export`` takes ~10 s on 2 cores); the QDQ one is made from it by
    ``onnxruntime.quantization.quantize_static`` (int8 weights and activations) calibrated on 32
    random [0,1] images. Both stay at the exporter's IR 8 (ONNX Runtime 1.31 reads ≤ 13).
    """
    torch = pytest.importorskip("torch")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(8 * 8 * 8, 4),
        ).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.rand(2, *CNN_SHAPE),),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
            opset_version=17,
        )
    float_bytes = buffer.getvalue()

    class RandomImages(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"x": rng.random((1, *CNN_SHAPE), dtype=np.float32)} for _ in range(32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    folder = tmp_path_factory.mktemp("qdq")
    (folder / "float.onnx").write_bytes(float_bytes)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs a pre-processing hint at WARNING
    try:
        quantize_static(
            str(folder / "float.onnx"),
            str(folder / "int8.onnx"),
            RandomImages(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)
    return float_bytes, (folder / "int8.onnx").read_bytes()
