"""explain_dataset on a real (2-CPU, local) Ray cluster: parity, kill-and-resume, a corrupt image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("ray.data")

from onnxplain.demo import demo_onnx_path  # noqa: E402
from onnxplain.distributed import MethodSpec, OnnxModelSpec, ResultStore, explain_dataset, image_seed  # noqa: E402
from onnxplain.errors import ModelLoadError  # noqa: E402
from tests.distributed.dataset_helpers import SEED, oracle  # noqa: E402

IDS = [f"{i:06d}" for i in range(12)]


def test_ray_equals_in_process_bit_for_bit(ray_cluster, tmp_path, images, model_spec) -> None:
    result = explain_dataset(
        images, model_spec, MethodSpec("geex", {"n_queries": 64}), out=tmp_path, num_workers=2, seed=SEED
    )
    assert (result.n_computed, len(result.ok), result.backend) == (12, 12, "ray")
    assert [r["id"] for r in result.rows] == IDS
    want = oracle(images, IDS, 64)
    for row in result.rows:
        exp = result.load(row["id"])
        np.testing.assert_array_equal(exp.attributions, want[row["id"]])
        assert exp.params["seed"] == row["seed"] == image_seed(SEED, row["id"])
        assert row["worker"].split(":")[1] != str(os.getpid())  # computed in an actor


_KILLABLE = textwrap.dedent(
    """
    import sys, numpy as np, ray
    from onnxplain.distributed import MethodSpec, OnnxModelSpec, explain_dataset
    ray.init(address=sys.argv[1], logging_level="ERROR")
    explain_dataset(np.load(sys.argv[2]), OnnxModelSpec(sys.argv[3], batch_size=32),
                    MethodSpec("geex", {"n_queries": int(sys.argv[5])}), out=sys.argv[4], num_workers=1, seed=7)
    """
)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_killed_run_resumes_without_recomputing(ray_cluster, tmp_path, images, model_spec) -> None:
    n_queries = 3000  # ~0.1-0.3 s per image, so the run can be killed part-way
    np.save(tmp_path / "x.npy", images)
    (tmp_path / "run.py").write_text(_KILLABLE)
    out = tmp_path / "out"
    store = ResultStore(out)
    address = ray_cluster.get_runtime_context().gcs_address
    proc = subprocess.Popen(
        [
            sys.executable,
            str(tmp_path / "run.py"),
            address,
            str(tmp_path / "x.npy"),
            str(demo_onnx_path()),
            str(out),
            str(n_queries),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: len(store.finished(IDS)) >= 3, 120, "three finished images")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies at once: no clean-up of any kind
        proc.wait()
    # Ray then kills the dead job's actor; wait until it has released its CPU
    _wait_for(lambda: ray_cluster.available_resources().get("CPU", 0) >= 2, 60, "the killed actor to go")
    before = store.finished(IDS)
    assert 3 <= len(before) < 12, "the run finished before it could be killed"
    stamps = {i: (store.map_path(i).stat().st_mtime_ns, store.read_row(i)["run"]) for i in before}

    resumed = explain_dataset(
        images, model_spec, MethodSpec("geex", {"n_queries": n_queries}), out=out, num_workers=2, seed=SEED
    )
    assert (resumed.n_skipped, resumed.n_computed) == (len(before), 12 - len(before))
    assert len(resumed.ok) == 12
    runs = {r["id"]: r["run"] for r in resumed.rows}
    for i in before:  # untouched: same file, same run id
        assert (store.map_path(i).stat().st_mtime_ns, runs[i]) == stamps[i]
    new_run = resumed.extra["run"]
    assert {i for i, r in runs.items() if r == new_run} == set(IDS) - before  # each image computed once
    want = oracle(images, IDS, n_queries)
    for i in IDS:
        np.testing.assert_array_equal(resumed.load(i).attributions, want[i])


def test_corrupt_image_is_recorded_and_others_finish(ray_cluster, tmp_path, images, model_spec) -> None:
    import ray.data

    folder = tmp_path / "imgs"
    folder.mkdir()
    names = [f"digit{i}" for i in range(5)]
    for name, x in zip(names[:3], images, strict=False):
        np.save(folder / f"{name}.npy", x)
    (folder / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    method = MethodSpec("geex", {"n_queries": 64})
    out = tmp_path / "out"
    first = explain_dataset(folder, model_spec, method, out=out, num_workers=0, seed=SEED)  # in-process
    assert [r["id"] for r in first.errors] == ["broken"] and len(first.ok) == 3

    # two more images arrive; the folder, as a ray.data.Dataset (id + path columns), is resumed on Ray
    for name, x in zip(names[3:], images[3:], strict=False):
        np.save(folder / f"{name}.npy", x)
    rows = [{"id": p.stem, "path": str(p)} for p in sorted(folder.iterdir())]
    result = explain_dataset(ray.data.from_items(rows), model_spec, method, out=out, num_workers=2, seed=SEED)
    assert (result.n_skipped, result.n_computed) == (3, 3)  # the error is retried, finished ones skipped
    assert [r["id"] for r in result.errors] == ["broken"]
    assert "InvalidInputError" in result.errors[0]["error"] and "broken.npy" in result.errors[0]["error"]
    assert result.errors[0]["run"] == result.extra["run"]  # recorded by this (Ray) run
    want = oracle(images[:5], names, 64)
    for name in names:
        np.testing.assert_array_equal(result.load(name).attributions, want[name])
    assert {r["id"] for r in result.rows if r["run"] == result.extra["run"]} == {"broken", "digit3", "digit4"}


def test_a_model_that_cannot_load_fails_clearly(ray_cluster, tmp_path, images) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        explain_dataset(images[:2], OnnxModelSpec(bad), "geex", out=tmp_path / "out", num_workers=1)


def test_worker_errors_are_rebuilt_in_the_driver() -> None:
    from onnxplain.distributed.ray_runner import _fatal, _summarise
    from onnxplain.errors import OnnxplainError, RemoteModelError

    err = _fatal("RemoteModelError: GET http://h/v2/models/m answered HTTP 404: unknown model.")
    assert type(err) is RemoteModelError and str(err).startswith("GET http://h/v2")
    generic = _fatal("KeyError: 'x'")
    assert type(generic) is OnnxplainError and "could not start: KeyError" in str(generic)
    wrapped = RuntimeError(
        "\x1b[36mray::MapWorker(MapBatches(ExplainWorker)).__init__()\x1b[39m (pid=1)\n"
        '  File "x.py", line 3, in f\n'
        "google.protobuf.message.DecodeError: first\n\nThe above exception was the direct cause\n"
        "builtins.RuntimeError: the real reason\n"
    )
    assert _summarise(wrapped) == "RuntimeError: the real reason"
    assert _summarise(ValueError("")) == "ValueError"
