"""A detector behind onnxplain's v2 server on loopback: the same proposals and scores as the local
session, all outputs decoded by name, and server errors as RemoteModelError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxplain.errors import ModelLoadError, RemoteModelError
from onnxplain.models.detector import DetectorModel, open_detector
from onnxplain.serving.server import V2Server
from tests.models.detector_builders import square_detector_onnx, square_photo

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def square_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("remote-det") / "square.onnx"
    path.write_bytes(square_detector_onnx())
    return path


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_remote_detector_matches_the_local_session(square_file: Path, binary: bool) -> None:
    local = open_detector(square_file, batch_size=8)
    with V2Server(square_file, name="square") as server:
        remote = open_detector(server.model_url, names=["square", "other"], binary=binary, batch_size=4)
        assert remote.decoder.name == "yolov8" and remote.model_hw == (64, 64)
        x = np.random.default_rng(0).random((6, 3, 64, 64), dtype=np.float32)
        np.testing.assert_allclose(remote.proposals(x).boxes, local.proposals(x).boxes)
        np.testing.assert_allclose(remote.proposals(x).class_scores, local.proposals(x).class_scores, rtol=1e-6)
        before = server.n_requests
        model = DetectorModel(remote, square_photo())
        assert model.targets[0].label == "square"
        out = model(np.repeat(model.explicand[None], 5, 0) * np.linspace(1, 0, 5, dtype=np.float32)[:, None, None, None])
        assert server.n_requests - before == 1 + 2  # the photo, then 5 samples in calls of 4
        assert out[0, 0] > 0.99 and out[-1, 0] < 1e-3


def test_remote_errors_are_one_sentence(square_file: Path) -> None:
    with V2Server(square_file, name="square") as server:
        with pytest.raises(RemoteModelError):
            open_detector(server.url + "/v2/models/nothing", retries=0)
    with pytest.raises(ModelLoadError, match="dynamic input size"):
        _open_dynamic(square_file)


def _open_dynamic(square_file: Path) -> None:
    import onnx

    proto = onnx.load(square_file)
    for d in proto.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_param = "side"
    path = square_file.with_name("dynamic.onnx")
    onnx.save(proto, path)
    with V2Server(path, name="dyn") as server:
        open_detector(server.model_url)
