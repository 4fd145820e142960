"""Servers that publish empty, partial or no model metadata: RemoteModel asks the metadata only for
what the user did not give, and names the option (and CLI flag) of anything missing from both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError, ModelLoadError, RemoteModelError
from onnxplain.models import RemoteModel
from onnxplain.models.onnx import OnnxModel
from tests.remote.remote_helpers import MetadataServer, tiny_model

pytestmark = pytest.mark.filterwarnings("ignore:.*answers with (logits|probabilities).*:UserWarning")

GIVEN = {"input_name": "pixels", "output_name": "logits", "input_shape": (1, 28, 28), "num_classes": 10}
FLAGS = {
    "input_name": "--input-name NAME",
    "output_name": "--output-name NAME",
    "input_shape": "--input-shape C,H,W",
    "num_classes": "--num-classes N",
}


@pytest.fixture(scope="module", params=["empty", "partial", "none"])
def bare(request, demo_path: Path):
    with MetadataServer(demo_path, name="mnist", metadata=request.param, threads=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(7).random((9, 1, 28, 28), dtype=np.float32)


def test_everything_given_needs_no_metadata(bare, demo_path, x) -> None:
    local = OnnxModel(demo_path, device="cpu", output="logits", batch_size=16, intra_op_threads=1)
    with RemoteModel.from_url(bare.model_url, output="logits", **GIVEN) as model:
        assert model.input_shape == (1, 28, 28) and model.num_classes == 10
        assert model.input_datatype == "FP32" and model.max_batch_size is None
        np.testing.assert_array_equal(model(x), local(x))
        assert model.output_datatype == "FP32" and model.n_queries == 9 == bare.n_samples
        assert model.tensors.datatype_declared is (bare.metadata_mode == "partial")
        if bare.metadata_mode == "none":
            assert model.metadata is None


@pytest.mark.parametrize("missing", list(GIVEN))
def test_a_missing_field_names_its_option_and_flag(bare, missing) -> None:
    given = {k: v for k, v in GIVEN.items() if k != missing}
    mode = bare.metadata_mode
    if mode == "partial" and missing in ("input_name", "output_name"):
        with RemoteModel.from_url(bare.model_url, **given) as model:  # the names are published
            assert getattr(model, missing) == GIVEN[missing]
        return
    error = RemoteModelError if mode == "none" else ModelLoadError
    with pytest.raises(error, match=rf"{missing}= \(CLI: {FLAGS[missing]}\)") as info:
        RemoteModel.from_url(bare.model_url, **given)
    if mode == "none":
        assert "answered HTTP 404" in str(info.value) and "publishes no model metadata" in str(info.value)
        assert str(info.value).count("(CLI: ") == 1  # only what is missing


def test_partial_metadata_is_checked_where_it_speaks(demo_path) -> None:
    with MetadataServer(demo_path, name="mnist", metadata="partial", threads=1) as srv:
        with pytest.raises(ModelLoadError, match=r"no input named 'image' \(it has pixels\)"):
            RemoteModel.from_url(srv.model_url, **{**GIVEN, "input_name": "image"})
    with MetadataServer(demo_path, name="mnist", metadata="full", threads=1) as srv:
        with pytest.raises(InvalidInputError, match=r"num_classes=5 does not fit the server's output shape \[-1, 10\]"):
            RemoteModel.from_url(srv.model_url, num_classes=5)
        with pytest.raises(InvalidInputError, match="num_classes must be a positive integer"):
            RemoteModel.from_url(srv.model_url, num_classes=0)


def test_assumed_fp32_is_named_when_the_server_refuses_it(tmp_path) -> None:
    path = tiny_model(tmp_path / "double.onnx", double=True)
    x = np.random.default_rng(8).random((3, 1, 6, 6), dtype=np.float32)
    given = {"input_name": "image", "output_name": "scores", "input_shape": (1, 6, 6), "num_classes": 4}
    with MetadataServer(path, name="double", metadata="empty", threads=1) as srv:
        with RemoteModel.from_url(srv.model_url, output="raw", retries=3, **given) as model:
            with pytest.raises(
                RemoteModelError,
                match=r"HTTP 400: input 'image' has datatype 'FP32', expected 'FP64' \(the input was sent as "
                r"FP32: the metadata names no datatype\)",
            ):
                model(x)
            assert model.n_queries == 0 and srv.n_requests == 0
    with MetadataServer(path, name="double", metadata="full", threads=1) as srv:  # declared: FP64 is sent
        with RemoteModel.from_url(srv.model_url, output="raw") as model:
            assert model.input_datatype == "FP64"
            np.testing.assert_array_equal(model(x), OnnxModel(path, device="cpu", output="raw")(x))
