"""``onnxplain explain`` end to end: outputs, shapes, the results.json schema, re-runs."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

RECORD_KEYS = {
    "image", "stem", "method", "target", "label", "score", "model_score", "n_queries", "seconds",
    "model_seconds", "params", "diagnostics", "files", "shape", "settings_key",
}


def test_explain_writes_maps_overlays_and_results(workdir, run_cli):
    out = workdir / "out"
    code, stdout, err = run_cli(
        "explain", workdir / "rgb.onnx", workdir / "a.png", workdir / "b.jpg",
        "--method", "geex", "--method", "rise,lime", "-n", "64", "--seed", "3",
        "--labels", workdir / "labels3.txt", "--out", out,
    )
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"] == "explain" and doc["schema"] == 1
    assert doc["model"]["input_shape"] == [3, 8, 8] and doc["model"]["num_classes"] == 3
    assert doc["settings"]["methods"] == ["geex", "rise", "lime"] and doc["settings"]["seed"] == 3
    assert len(doc["results"]) == 6
    for rec in doc["results"]:
        assert RECORD_KEYS <= rec.keys()
        assert rec["label"] in ("cat", "dog", "<b>bird</b>")
        assert 0 < rec["n_queries"] <= 64 + 8  # the budget, plus f(x)/baseline evaluations
        assert rec["params"]["seed"] == 3
        a = np.load(out / rec["files"]["npy"])
        assert a.shape == (3, 8, 8) and a.dtype == np.float32 and np.isfinite(a).all()
        png = Image.open(out / rec["files"]["png"])
        assert png.size == (224, 224) and png.mode == "RGB"  # 8×8 enlarged ×28
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".npy") == sorted(
        f"{s}.{m}.npy" for s in ("a", "b") for m in ("geex", "rise", "lime")
    )
    assert "a.png" in stdout and "geex" in stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_explain_is_deterministic_and_resumable(workdir, run_cli):
    out = workdir / "out"
    argv = ["explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "geex", "-n", "32", "--out", out]
    assert run_cli(*argv)[0] == 0
    first = np.load(out / "c.geex.npy")
    stamp = (out / "c.geex.npy").stat().st_mtime_ns
    code, stdout, _ = run_cli(*argv)
    assert code == 0 and "already existed" in stdout
    assert (out / "c.geex.npy").stat().st_mtime_ns == stamp  # skipped, not rewritten
    code, stdout, _ = run_cli(*argv, "--force")
    assert code == 0 and "already existed" not in stdout
    assert (out / "c.geex.npy").stat().st_mtime_ns != stamp
    assert np.array_equal(np.load(out / "c.geex.npy"), first)  # same seed, same map
    # a different seed is a different setting: recomputed even without --force
    code, stdout, _ = run_cli(*argv[:-2], "--seed", "1", "--out", out)
    assert code == 0 and "already existed" not in stdout
    assert not np.array_equal(np.load(out / "c.geex.npy"), first)
    # explaining another image into the same directory keeps the earlier records
    assert run_cli("explain", workdir / "linear.onnx", workdir / "b.jpg", "-m", "geex", "-n", "32",
                   "--seed", "1", "--out", out)[0] == 0
    doc = json.loads((out / "results.json").read_text())
    assert sorted(r["stem"] for r in doc["results"]) == ["b", "c"]


def test_explain_json_and_quiet(workdir, run_cli):
    code, stdout, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "rise", "-n", "16",
                                "--target", "2", "--json", "--out", workdir / "o")
    assert code == 0 and err == ""
    doc = json.loads(stdout)  # stdout is only the JSON document
    assert doc["results"][0]["target"] == 2 and doc["results"][0]["method"] == "rise"
    code, stdout, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "rise", "-n", "16",
                                "--quiet", "--force", "--out", workdir / "o")
    assert code == 0 and stdout == "" and err == ""


def test_explain_the_demo_model(tmp_path, run_cli):
    """The shipped ONNX model on shipped digits saved as .npy and as a PNG."""
    from onnxplain.demo import demo_onnx_path, load_demo_digits

    x, y = load_demo_digits()
    np.save(tmp_path / "d0.npy", x[0])
    Image.fromarray((x[1, 0] * 255).round().astype(np.uint8)).save(tmp_path / "d1.png")
    out = tmp_path / "out"
    code, _, err = run_cli("explain", demo_onnx_path(), tmp_path / "d0.npy", tmp_path / "d1.png",
                           "-m", "geex,lime", "-n", "200", "--out", out)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert [r["target"] for r in doc["results"][::2]] == [int(y[0]), int(y[1])]  # the digits are recognised
    for rec in doc["results"]:
        assert np.load(out / rec["files"]["npy"]).shape == (1, 28, 28)
        assert rec["model_score"] > 0.5


def test_explain_through_the_dataset_runner(workdir, run_cli):
    """--backend ray --workers 0: explain_dataset in-process; same outputs, per-image seeds recorded."""
    from onnxplain.distributed import image_seed

    out = workdir / "out"
    code, _, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", workdir / "b.jpg",
                           "-m", "geex", "-n", "32", "--seed", "5", "--backend", "ray", "--workers", "0", "--out", out)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["settings"]["backend"] == "ray"
    seeds = {r["stem"]: r["params"]["seed"] for r in doc["results"]}
    assert seeds == {"c": image_seed(5, "c"), "b": image_seed(5, "b")}
    for rec in doc["results"]:
        assert np.load(out / rec["files"]["npy"]).shape == (1, 8, 8)
        assert rec["n_queries"] <= 32 + 8
    # the same map as a local run with that image's seed
    local = workdir / "local"
    assert run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "geex", "-n", "32",
                   "--seed", str(seeds["c"]), "--out", local)[0] == 0
    assert np.allclose(np.load(local / "c.geex.npy"), np.load(out / "c.geex.npy"), atol=1e-6)


def test_query_progress_follows_the_model_counter():
    """The TTY progress bar reads n_queries from the model and closes cleanly."""
    import io
    import time

    from onnxplain.cli._progress import QueryProgress

    class Counter:
        n_queries = 0

    model = Counter()
    with QueryProgress(model, 100, "test", enabled=True) as progress:
        progress._bar.fp = io.StringIO()
        model.n_queries = 40
        time.sleep(0.5)
        assert progress._bar.n == 40
        model.n_queries = 500
        progress._update()
        assert progress._bar.n == 100  # capped at the budget
    assert not progress._thread.is_alive()
    with QueryProgress(model, 100, "off", enabled=False) as progress:
        assert progress._bar is None


def test_url_model_through_the_dataset_runner_keeps_its_options(workdir, run_cli):
    """A v2 URL with --backend ray passes --mean/--std and --batch-size on to every worker's model."""
    from onnxplain.serve import V2Server

    common = ("-m", "geex", "-n", "32", "--seed", "5", "--mean", "0.5", "--std", "0.25",
              "--batch-size", "4", "--backend", "ray", "--workers", "0")
    with V2Server(workdir / "linear.onnx", name="lin", port=0) as server:
        url = f"{server.url}/v2/models/lin"
        code, _, err = run_cli("explain", url, workdir / "c.npy", *common, "--out", workdir / "remote")
    assert code == 0, err
    assert run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", *common, "--out", workdir / "file")[0] == 0
    remote, local = np.load(workdir / "remote" / "c.geex.npy"), np.load(workdir / "file" / "c.geex.npy")
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-7)
    plain = workdir / "plain"
    assert run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "geex", "-n", "32", "--seed", "5",
                   "--backend", "ray", "--workers", "0", "--out", plain)[0] == 0
    assert not np.allclose(np.load(plain / "c.geex.npy"), local)  # the normalisation mattered


def test_a_changed_image_under_the_same_name_is_recomputed(workdir, run_cli):
    """The cache key holds the explicand's values: new pixels in c.npy are not answered with c's old map."""
    out = workdir / "out"
    argv = ["explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "geex", "-n", "16", "--out", out]
    assert run_cli(*argv)[0] == 0
    first = np.load(out / "c.geex.npy")
    np.save(workdir / "c.npy", np.load(workdir / "c.npy")[:, ::-1].copy())
    code, stdout, _ = run_cli(*argv)
    assert code == 0 and "already existed" not in stdout
    assert not np.array_equal(np.load(out / "c.geex.npy"), first)
