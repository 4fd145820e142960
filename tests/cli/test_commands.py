"""demo, compare, evaluate, export and bench through the CLI entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

METHODS = ["geex", "rise", "lime", "ig", "smoothgrad", "agi", "attexplore", "la"]
METRICS = ["aopc_deletion", "insertion_auc", "deletion_auc"]


def test_demo_end_to_end(tmp_path, run_cli):
    """All eight methods on one shipped digit with tiny budgets; the JSON schema and the report."""
    out = tmp_path / "demo"
    argv = ["demo", "--out", out, "--images", "1", "--queries", "100", "--steps", "4", "--metric-step", "28"]
    code, stdout, err = run_cli(*argv, "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc == json.loads((out / "results.json").read_text())
    assert doc["command"] == "demo" and doc["parity"]["ok"] is True
    assert doc["parity"]["max |Δ probability|"] < 1e-4
    assert list(doc["summary"]) == METHODS
    assert [m["name"] for m in doc["metrics"]] == METRICS
    assert {m["name"]: m["higher_is_better"] for m in doc["metrics"]} == {
        "aopc_deletion": True, "insertion_auc": True, "deletion_auc": False}
    (image,) = doc["images"]
    assert image["label"] == image["true_label"]  # the demo CNN gets the digit right
    assert [m["method"] for m in image["maps"]] == METHODS
    for m in image["maps"]:
        assert m["kind"] == ("black-box" if m["method"] in ("geex", "rise", "lime") else "white-box")
        assert set(m["metrics"]) == set(METRICS)
        assert all(np.isfinite(v) for v in m["metrics"].values())
        assert np.load(out / m["file"]).shape == (1, 28, 28)
        if m["kind"] == "black-box":
            assert 0 < m["n_queries"] <= 110 and m["n_backward"] == 0
        else:
            assert m["n_backward"] > 0
    matrix = np.array(image["agreement"]["matrix"])
    assert matrix.shape == (8, 8) and np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1)
    html = (out / "report.html").read_text()
    assert all(f"<b>{m}</b>" in html for m in METHODS)
    # a re-run reuses every map
    code, stdout, _ = run_cli(*argv)
    assert code == 0 and "8 map(s) were reused" in stdout and "report:" in stdout


def test_compare_checks_parity_first_and_flags_a_mismatch(tmp_path, run_cli):
    from onnxplain.demo import demo_onnx_path, load_demo_digits

    x, _ = load_demo_digits()
    np.save(tmp_path / "d.npy", x[2])
    out = tmp_path / "cmp"
    # a torch twin that normalises twice: a different function
    code, stdout, err = run_cli(
        "compare", "--onnx", demo_onnx_path(), "--torch", "demo", "--torch-mean", "0.5", "--torch-std", "0.25",
        tmp_path / "d.npy", "--blackbox", "geex", "--whitebox", "ig", "-n", "64", "--steps", "4",
        "--metrics", "deletion_auc", "--out", out,
    )
    assert code == 0, err
    assert stdout.splitlines()[0].startswith("model parity:") and "MISMATCH" in stdout.splitlines()[0]
    assert "disagree" in err
    doc = json.loads((out / "results.json").read_text())
    assert doc["parity"]["ok"] is False
    assert [m["method"] for m in doc["images"][0]["maps"]] == ["geex", "ig"]
    assert "disagree" in (out / "report.html").read_text()


def test_compare_bad_torch_spec(tmp_path, workdir, run_cli):
    base = ["compare", "--onnx", workdir / "linear.onnx", workdir / "c.npy", "--out", tmp_path / "o"]
    code, _, err = run_cli(*base, "--torch", "no_such_module_xyz:Net")
    assert code == 2 and "cannot import" in err
    code, _, err = run_cli(*base, "--torch", "resnet18")
    assert code == 2 and "--weights" in err
    code, _, err = run_cli(*base, "--torch", "demo", "--whitebox", "geex")
    assert code == 2 and "black-box method" in err
    assert not (tmp_path / "o").exists()


def test_evaluate_matches_the_library(workdir, run_cli):
    from onnxplain.evaluation import deletion_auc
    from onnxplain.models.onnx import OnnxModel

    out = workdir / "maps"
    assert run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", workdir / "b.jpg",
                   "-m", "geex,rise", "-n", "32", "--out", out)[0] == 0
    code, stdout, err = run_cli("evaluate", workdir / "linear.onnx", "--attributions", out,
                                "--metrics", "deletion_auc,aopc_deletion", "--metric-step", "4", "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc == json.loads((out / "evaluation.json").read_text())
    assert set(doc["methods"]) == {"geex", "rise"}
    results = json.loads((out / "results.json").read_text())["results"]
    geex = [r for r in results if r["method"] == "geex"]
    from onnxplain.images import load_image

    model = OnnxModel(workdir / "linear.onnx", device="cpu")
    x = np.stack([load_image(r["image"], (1, 8, 8)) for r in geex])
    a = np.stack([np.load(out / r["files"]["npy"]) for r in geex])
    expected = deletion_auc(model, x, a, target=[r["target"] for r in geex], step=4)
    got = doc["methods"]["geex"]["metrics"]["deletion_auc"]
    assert got["score"] == pytest.approx(expected.score)
    assert got["higher_is_better"] is False
    # a missing directory and an unknown metric are bad input
    assert run_cli("evaluate", workdir / "linear.onnx", "--attributions", workdir / "nope")[0] == 2
    assert run_cli("evaluate", workdir / "linear.onnx", "--attributions", out, "--metrics", "vibes")[0] == 2


def test_export_command(tmp_path, run_cli):
    labels = tmp_path / "digits.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    out = tmp_path / "mnist.onnx"
    code, stdout, err = run_cli("export", out, "--torch", "demo", "--input-shape", "1,28,28", "--labels", labels)
    assert code == 0, err
    from onnxplain.models.onnx import OnnxModel

    model = OnnxModel(out, device="cpu")
    assert model.input_shape == (1, 28, 28) and model.labels == [f"digit {i}" for i in range(10)]
    assert "top1_agreement" in stdout
    # refusing to overwrite, wrong suffix, wrong label count: exit 2, file untouched
    before = out.read_bytes()
    assert run_cli("export", out, "--torch", "demo", "--input-shape", "1,28,28")[0] == 2
    assert out.read_bytes() == before
    assert run_cli("export", tmp_path / "m.txt", "--torch", "demo", "--input-shape", "1,28,28")[0] == 2
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    code, _, err = run_cli("export", tmp_path / "m2.onnx", "--torch", "demo", "--input-shape", "1,28,28",
                           "--labels", tmp_path / "three.txt")
    assert code == 2 and "10 classes" in err and not (tmp_path / "m2.onnx").exists()


def test_bench_lists_and_runs_scripts(tmp_path, run_cli):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "__init__.py").write_text("")
    (bench / "_helpers.py").write_text("")
    (bench / "harness.py").write_text("")
    (bench / "hello.py").write_text(
        "import pathlib, sys\npathlib.Path('hello.out').write_text(' '.join(['hello', *sys.argv[1:]]))\n"
    )
    (bench / "failing.py").write_text("raise SystemExit(3)\n")
    code, out, _ = run_cli("bench", "--root", tmp_path, "--list")
    assert code == 0 and out.split() == ["failing", "hello"]
    assert run_cli("bench", "--root", tmp_path, "hello", "--", "--fast")[0] == 0
    assert (tmp_path / "hello.out").read_text() == "hello --fast"  # run as a module from the root
    assert run_cli("bench", "--root", tmp_path, "failing")[0] == 1
    code, _, err = run_cli("bench", "--root", tmp_path, "nope")
    assert code == 2 and "unknown benchmark 'nope'" in err
    code, _, err = run_cli("bench", "--root", tmp_path / "empty")
    assert code == 2 and "no benchmarks/ directory" in err
    # with a suite runner, a bare 'bench' hands over to it (with the options after --)
    (bench / "__main__.py").write_text(
        "import pathlib, sys\npathlib.Path('suite.out').write_text(' '.join(sys.argv[1:]))\n"
    )
    assert run_cli("bench", "--root", tmp_path, "--", "--mnist", "x.npz")[0] == 0
    assert (tmp_path / "suite.out").read_text() == "--mnist x.npz"


def test_bench_help_names_only_real_benchmarks(run_cli, monkeypatch):
    """The help's examples come from the checkout's benchmarks/ (the suite runner's own list)."""
    import re
    from pathlib import Path

    from benchmarks.__main__ import benchmark_names
    from onnxplain.cli.bench import list_benchmarks

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    assert list_benchmarks(root) == benchmark_names()
    code, out, _ = run_cli("bench", "--help")
    assert code == 0
    named = set(re.findall(r"onnxplain bench ([a-z_0-9]+)", out))
    assert named and named <= set(benchmark_names())
    listed = re.search(r"benchmarks in this checkout: (.*)", out).group(1).split(", ")
    assert listed == benchmark_names()
