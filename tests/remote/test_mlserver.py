"""RemoteModel against a real MLServer serving the demo CNN through onnxplain's custom runtime.

One MLServer process per module serves three models: ``mnist`` with the README's model-settings
(metadata declared), ``mnist-bare`` (the same settings without inputs/outputs: empty metadata)
and ``mnist-softmax`` (the CNN with a Softmax appended, no metadata declared). A second process,
started and stopped inside one test, gives the error of a stopped server.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from onnxplain.blackbox.geex import GEEX
from onnxplain.demo import load_demo_digits
from onnxplain.errors import QueryBudgetExceeded, RemoteModelError
from onnxplain.models import RemoteModel
from onnxplain.models.onnx import OnnxModel
from tests.remote.mlserver_helpers import MLServerProcess, readme_recipe, write_model
from tests.remote.remote_helpers import softmax_model

BARE = {"input_name": "pixels", "output_name": "logits", "input_shape": (1, 28, 28), "num_classes": 10}


def bare_settings(name: str) -> dict:
    settings = copy.deepcopy(readme_recipe()["settings"])
    settings["name"] = name
    del settings["inputs"], settings["outputs"]
    return settings


@pytest.fixture(scope="module")
def paths(demo_path: Path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mlserver")
    return {"mnist": demo_path, "mnist-softmax": softmax_model(demo_path, root / "softmax.onnx"), "root": root}


@pytest.fixture(scope="module")
def mlserver(paths):
    repository = paths["root"] / "models"
    write_model(repository, readme_recipe()["settings"], paths["mnist"])  # the README's file, unchanged
    write_model(repository, bare_settings("mnist-bare"), paths["mnist"])
    write_model(repository, bare_settings("mnist-softmax"), paths["mnist-softmax"])
    with MLServerProcess(repository, ["mnist", "mnist-bare", "mnist-softmax"]) as server:
        yield server


def open_model(server: MLServerProcess, name: str, **kw) -> RemoteModel:
    kw.setdefault("backoff", 0.01)
    if name != "mnist":
        kw = {**BARE, **kw}
        if name == "mnist-softmax":
            kw["output_name"] = "probs"
    return RemoteModel.from_url(f"{server.url}/v2/models/{name}", **kw)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(11).random((40, 1, 28, 28), dtype=np.float32)


@pytest.mark.filterwarnings("ignore:.*answers with logits.*:UserWarning")
@pytest.mark.parametrize("name", ["mnist", "mnist-bare"])
@pytest.mark.parametrize("head", ["logits", "probs"])
def test_outputs_equal_onnx_model(mlserver, paths, x, name, head) -> None:
    local = OnnxModel(paths["mnist"], device="cpu", output=head, batch_size=16, intra_op_threads=1)
    with open_model(mlserver, name, output=head, batch_size=16, concurrency=2) as model:
        assert model.input_shape == (1, 28, 28) and model.num_classes == 10
        assert model.binary is False and model.max_batch_size is None  # MLServer: JSON, no /config
        assert model.tensors.datatype_declared is (name == "mnist")
        np.testing.assert_array_equal(model(x), local(x))
        assert model.n_queries == 40 and model.n_calls == 3 and model.ends_in_softmax is False


@pytest.mark.parametrize("name", ["mnist", "mnist-bare", "mnist-softmax"])
def test_geex_through_mlserver_equals_local_bitwise(mlserver, paths, name) -> None:
    explicands = load_demo_digits()[0][:2]
    geex = GEEX(n_queries=512, seed=4)
    local = OnnxModel(paths[name.replace("-bare", "")], device="cpu", output="probs", intra_op_threads=1)
    b = geex.explain(local, explicands)
    probs = name == "mnist-softmax"
    with open_model(mlserver, name, output="probs", batch_size=64, concurrency=2) as model:
        with pytest.warns(UserWarning, match="answers with probabilities" if probs else "answers with logits"):
            a = geex.explain(model, explicands)
        assert model.ends_in_softmax is probs and model.describe()["ends_in_softmax_source"] == "first answer"
    np.testing.assert_array_equal(a.attributions, b.attributions)
    np.testing.assert_array_equal(a.target, b.target)
    assert a.n_queries == b.n_queries == model.n_queries


def test_budget_and_counters_hold(mlserver, x) -> None:
    before = mlserver.infer_requests("mnist-bare")
    with open_model(mlserver, "mnist-bare", ends_in_softmax=False, batch_size=8, max_queries=30) as model:
        model(x[:20])
        with pytest.raises(QueryBudgetExceeded, match="needs 20 queries but only 10 of the budget of 30 remain"):
            model(x[:20])
        model(x[:10])
        assert model.n_queries == 30 and model.n_calls == 3 + 2
        with pytest.raises(QueryBudgetExceeded):
            model(x[:1])
    assert mlserver.infer_requests("mnist-bare") - before == 5  # what reached MLServer: nothing refused


@pytest.mark.filterwarnings("ignore:.*answers with logits.*:UserWarning")
def test_mlserver_400_is_reported_not_retried(mlserver, x) -> None:
    before = mlserver.infer_requests("mnist-bare")
    with open_model(mlserver, "mnist-bare", input_name="image", retries=3) as model:
        with pytest.raises(
            RemoteModelError,
            match=r"/v2/models/mnist-bare/infer answered HTTP 400: unknown input 'image'; the model takes "
            r"\['pixels'\] \(the input was sent as FP32: the metadata names no datatype\)",
        ) as info:
            model(x[:2])
        assert info.value.status == 400 and model.n_queries == 0
    assert mlserver.infer_requests("mnist-bare") == before


def test_stopped_server_gives_the_documented_error(paths, x, tmp_path) -> None:
    repository = tmp_path / "models"
    write_model(repository, readme_recipe()["settings"], paths["mnist"])
    server = MLServerProcess(repository, ["mnist"]).start()
    try:
        model = open_model(server, "mnist", ends_in_softmax=False, retries=1, backoff=0.01)
        model(x[:2])
    finally:
        server.stop()
    with pytest.raises(
        RemoteModelError,
        match=rf"POST http://127\.0\.0\.1:{server.port}/v2/models/mnist/infer failed after 2 attempts: "
        r"connection failed \(ConnectionRefusedError",
    ) as info:
        model(x[:2])
    assert info.value.status is None and model.n_queries == 2
    model.close()


def test_readme_recipe_is_what_the_tests_serve(mlserver, tmp_path) -> None:
    """The README block: its copy command makes the model file, its settings name the runtime and
    the ONNX file, its URL is the model the tests serve, and its CLI line explains through MLServer."""
    recipe = readme_recipe()
    settings = recipe["settings"]
    assert settings["implementation"] == "onnxplain.serving.mlserver_runtime.OnnxRuntimeModel"
    assert recipe["settings_path"] == f"{recipe['repository']}/{settings['name']}/model-settings.json"
    copy_line = next(line for line in recipe["lines"] if line.startswith("python -c "))
    (tmp_path / recipe["repository"] / settings["name"]).mkdir(parents=True)
    code = copy_line[len("python -c ") :].strip('"')
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    copied = tmp_path / recipe["repository"] / settings["name"] / settings["parameters"]["uri"]
    from onnxplain.demo import demo_onnx_path

    assert copied.read_bytes() == demo_onnx_path().read_bytes()
    explain = next(line for line in recipe["lines"] if line.startswith("onnxplain explain "))
    args = explain.split()[2:]
    assert args[0] == f"http://127.0.0.1:8080/v2/models/{settings['name']}"
    args[0] = f"{mlserver.url}/v2/models/{settings['name']}"  # the fixture's port instead of 8080
    from PIL import Image

    Image.fromarray((load_demo_digits()[0][0, 0] * 255).round().astype(np.uint8)).save(tmp_path / "digit.png")
    done = subprocess.run(
        [sys.executable, "-m", "onnxplain.cli", "explain", *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert any((tmp_path / "maps").rglob("*.npy"))
