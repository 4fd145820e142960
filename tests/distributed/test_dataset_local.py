"""explain_dataset without Ray (num_workers=0): seeds, the output store, resume, validation, remote spec."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from onnxplain.demo import demo_onnx_path
from onnxplain.distributed import (
    MethodSpec,
    OnnxModelSpec,
    RemoteModelSpec,
    ResultStore,
    as_method_spec,
    as_model_spec,
    explain_dataset,
    image_seed,
)
from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.explanation import Explanation
from onnxplain.models.onnx import OnnxModel
from onnxplain.serve import V2Server
from tests.distributed.dataset_helpers import SEED, oracle

GEEX64 = MethodSpec("geex", {"n_queries": 64})


def test_image_seed_depends_on_seed_and_id_only() -> None:
    a = image_seed(0, "img_001")
    assert a == image_seed(0, "img_001")  # stable (no per-process hash salt)
    assert 0 <= a < 2**63
    seeds = {image_seed(s, f"img_{i:03d}") for s in range(3) for i in range(200)}
    assert len(seeds) == 600
    # the same in another process with another hash salt (Python's hash() would differ)
    code = "from onnxplain.distributed import image_seed; print(image_seed(0, 'img_001'))"
    for salt in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": salt},
            capture_output=True,
            text=True,
        )
        assert int(out.stdout) == a
    with pytest.raises(InvalidInputError, match="non-negative"):
        image_seed(-1, "x")


def test_specs_pickle_and_validate(tmp_path) -> None:
    spec = OnnxModelSpec(demo_onnx_path(), output="logits", batch_size=16)
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert as_model_spec(str(demo_onnx_path())).path == str(demo_onnx_path())
    assert isinstance(as_model_spec("http://h:1/v2/models/m", timeout=3), RemoteModelSpec)
    assert as_method_spec("GEEX", n_queries=8) == MethodSpec("geex", {"n_queries": 8})
    assert as_method_spec(("rise", {"n_masks": 8})).params == {"n_masks": 8}
    with pytest.raises(InvalidInputError, match="white-box"):
        MethodSpec("ig")
    with pytest.raises(InvalidInputError, match="unknown method"):
        MethodSpec("shap")
    with pytest.raises(InvalidInputError, match="must not contain 'seed'"):
        MethodSpec("geex", {"seed": 3})
    with pytest.raises(InvalidInputError, match="v2 model URL"):
        RemoteModelSpec("http://h:1/models/m")
    with pytest.raises(InvalidInputError, match="options go into the spec"):
        as_model_spec(spec, output="probs")
    with pytest.raises(InvalidInputError, match="model_spec must be"):
        as_model_spec(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="method_spec must be"):
        as_method_spec(3)  # type: ignore[arg-type]


def test_local_run_equals_oracle_and_resumes(tmp_path, images, model_spec) -> None:
    x = images[:4]
    ids = [f"{i:06d}" for i in range(4)]
    result = explain_dataset(x, model_spec, GEEX64, out=tmp_path, num_workers=0, seed=SEED)
    assert (result.n_computed, result.n_skipped, len(result.ok)) == (4, 0, 4)
    want = oracle(x, ids, 64)
    for row in result.rows:
        exp = result.load(row["id"])
        np.testing.assert_array_equal(exp.attributions, want[row["id"]])
        assert row["seed"] == image_seed(SEED, row["id"]) == exp.params["seed"]
        assert row["n_queries"] == exp.n_queries == 66  # 64 perturbed + f(x) + f(baseline)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "maps").iterdir()}

    again = explain_dataset(x, model_spec, GEEX64, out=tmp_path, num_workers=0, seed=SEED)
    assert (again.n_computed, again.n_skipped) == (0, 4)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "maps").iterdir()} == stamps

    # a half-written image (npz present, row missing) is not finished: it is recomputed
    ResultStore(tmp_path).row_path("000002").unlink()
    third = explain_dataset(x, model_spec, GEEX64, out=tmp_path, num_workers=0, seed=SEED)
    assert (third.n_computed, third.n_skipped) == (1, 3)
    np.testing.assert_array_equal(third.load("000002").attributions, want["000002"])

    with pytest.raises(InvalidInputError, match="different model, method, params or seed"):
        explain_dataset(x, model_spec, GEEX64, out=tmp_path, num_workers=0, seed=SEED + 1)
    fresh = explain_dataset(
        x[:1], model_spec, GEEX64, out=tmp_path, num_workers=0, seed=SEED + 1, resume=False
    )
    assert fresh.n_computed == 1 and fresh.rows[0]["seed"] == image_seed(SEED + 1, "000000")


def test_ids_targets_and_odd_names(tmp_path, images, model_spec) -> None:
    ids = ["a/b", ".hidden", "plain-1.png"]
    result = explain_dataset(
        images[:3], model_spec, GEEX64, out=tmp_path, num_workers=0, ids=ids, targets=[3, None, 5]
    )
    assert [r["id"] for r in result.rows] == sorted(ids)
    by_id = {r["id"]: r for r in result.rows}
    assert by_id["a/b"]["target"] == 3 and by_id["plain-1.png"]["target"] == 5
    top = OnnxModel(demo_onnx_path(), device="cpu", batch_size=4)(images[1:2]).argmax()
    assert by_id[".hidden"]["target"] == int(top)  # None = the model's top class
    files = {p.name for p in (tmp_path / "maps").iterdir()}
    assert files == {"a%2Fb.npz", "%2Ehidden.npz", "plain-1.png.npz"}
    assert Explanation.load(tmp_path / by_id["a/b"]["file"]).target == 3


def test_input_validation(tmp_path, images, model_spec) -> None:
    cases = [
        (dict(images=images[:2], ids=["a", "a"]), "unique"),
        (dict(images=images[:2], ids=["a"]), "1 ids were given for 2 images"),
        (dict(images=images[:2], targets=[1]), "1 targets were given for 2 images"),
        (dict(images=images[:2], targets=[-1, 2]), "non-negative class indices"),
        (dict(images=images[:2], num_workers=-1), "num_workers"),
        (dict(images=images[:2], seed=-3), "seed"),
        (dict(images=images[:2], cpus_per_worker=0), "cpus_per_worker"),
        (dict(images=np.zeros((0, 1, 28, 28), np.float32)), "non-empty"),
        (dict(images=[]), "no images"),
        (dict(images=42), "images must be"),
        (dict(images=str(tmp_path / "nowhere")), "not a directory"),
        (dict(images=["x/one.npy", "y/one.npy"]), "share a name stem"),
        (dict(images={"a": images[0]}, ids=["a"]), "cannot be combined"),
        (dict(images=images[:2], ids=["..", "b"]), "not usable as a file name"),
    ]
    for i, (kw, match) in enumerate(cases):
        kw.setdefault("num_workers", 0)
        with pytest.raises(InvalidInputError, match=match):
            explain_dataset(model_spec=model_spec, method_spec=GEEX64, out=tmp_path / str(i), **kw)
    with pytest.raises(ModelLoadError, match="does not exist"):
        explain_dataset(images[:1], tmp_path / "missing.onnx", "geex", out=tmp_path / "m", num_workers=0)


def test_a_bad_image_is_recorded_and_the_rest_finish(tmp_path, images, model_spec) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"digit{i}.npy", images[i])
    (folder / "broken.npy").write_bytes(b"definitely not numpy")
    result = explain_dataset(folder, model_spec, GEEX64, out=tmp_path / "out", num_workers=0, seed=SEED)
    assert [r["id"] for r in result.errors] == ["broken"]
    assert "InvalidInputError" in result.errors[0]["error"] and "broken.npy" in result.errors[0]["error"]
    want = oracle(images[:3], ["digit0", "digit1", "digit2"], 64)
    for i in range(3):
        np.testing.assert_array_equal(result.load(f"digit{i}").attributions, want[f"digit{i}"])
    with pytest.raises(InvalidInputError, match="has no explanation"):
        result.load("broken")
    with pytest.raises(InvalidInputError, match="not part of this run"):
        result.load("digit9")
    again = explain_dataset(folder, model_spec, GEEX64, out=tmp_path / "out", num_workers=0, seed=SEED)
    assert (again.n_computed, again.n_skipped) == (1, 3)  # the error is retried, the rest skipped


def test_remote_spec_gives_the_same_maps(tmp_path, images) -> None:
    """A RemoteModelSpec through the runner = the ONNX file through the runner (same seeds)."""
    local = explain_dataset(
        images[:3], OnnxModelSpec(demo_onnx_path(), batch_size=16), GEEX64, out=tmp_path / "a", num_workers=0
    )
    with V2Server(demo_onnx_path(), name="digits", threads=1, max_batch_size=16) as server:
        spec = RemoteModelSpec(server.model_url, {"concurrency": 2, "max_queries": 66})
        remote = explain_dataset(images[:3], spec, GEEX64, out=tmp_path / "b", num_workers=0)
    assert len(remote.ok) == 3  # max_queries is a per-image budget: 66 each is enough
    for row in local.rows:
        np.testing.assert_array_equal(remote.load(row["id"]).attributions, local.load(row["id"]).attributions)


def test_imports_need_neither_torch_nor_ray() -> None:
    code = (
        "import sys; import onnxplain.distributed, onnxplain.distributed.worker, onnxplain.models.remote, "
        "onnxplain.serve; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dataset_store_rows_carry_the_run_key(tmp_path):
    """The dataset runner's rows are committed through the same cache, keyed by the run's configuration."""
    store = ResultStore(tmp_path)
    store.prepare({"model": "m", "method": "geex", "seed": 0}, resume=True)
    store.map_path("a").write_bytes(b"x")
    store.write_row({"id": "a", "method": "geex", "status": "ok", "file": "maps/a.npz"})
    row = store.read_row("a")
    assert row["settings_key"] == store.key and row["files"] == {"npz": "maps/a.npz"}
    assert store.is_finished("a") and store.finished(["a", "b"]) == {"a"}
    assert store.holds({"model": "m", "method": "geex", "seed": 0})
    store.prepare({"model": "m", "method": "geex", "seed": 1}, resume=False)  # another configuration
    assert not store.is_finished("a")  # its row was made with other settings
    with pytest.raises(InvalidInputError, match="different model"):
        store.prepare({"model": "m", "method": "geex", "seed": 2}, resume=True)
