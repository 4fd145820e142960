"""Every kind of bad input: one line naming the problem, exit code 2, and no output left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from onnxplain.errors import DeviceUnavailableError

# (case id, argv after "explain" with {d} = the work dir and {out} = the output dir, expected phrase)
CASES = [
    ("missing model", ["{d}/missing.onnx", "{d}/a.png", "-m", "geex"], "does not exist"),
    ("model is a directory", ["{d}", "{d}/a.png", "-m", "geex"], "not a file"),
    ("not onnx", ["{d}/notes.txt", "{d}/a.png", "-m", "geex"], "not an ONNX model"),
    ("image given as model", ["{d}/a.png", "{d}/linear.onnx", "-m", "geex"], "not an ONNX model"),
    ("missing image", ["{d}/linear.onnx", "{d}/nope.png", "-m", "geex"], "does not exist"),
    ("not an image", ["{d}/linear.onnx", "{d}/notes.txt", "-m", "geex"], "not an image"),
    ("damaged png", ["{d}/linear.onnx", "{d}/fake.png", "-m", "geex"], "not an image"),
    ("several inputs", ["{d}/two_inputs.onnx", "{d}/a.png", "-m", "geex"], "exactly one image input"),
    ("no class output", ["{d}/no_class.onnx", "{d}/a.png", "-m", "geex"], "class-score output"),
    ("wrong npy shape", ["{d}/linear.onnx", "{d}/wrong.npy", "-m", "geex"], "input shape is (1, 8, 8)"),
    ("target out of range", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--target", "3"], "out of range"),
    ("negative target", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--target", "-1"], "out of range"),
    ("non-finite outputs", ["{d}/nan.onnx", "{d}/a.png", "-m", "geex"], "non-finite"),
    ("zero queries", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--queries", "0"], "--queries"),
    ("negative queries", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--queries", "-5"], "--queries"),
    ("unknown method", ["{d}/linear.onnx", "{d}/a.png", "-m", "shapley"], "unknown method 'shapley'"),
    ("white-box method", ["{d}/linear.onnx", "{d}/a.png", "-m", "ig"], "white-box method"),
    ("cuda unavailable", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--device", "cuda"], "CUDA"),
    ("bad device name", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--device", "tpu"], "device"),
    ("labels wrong count", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--labels", "{d}/labels2.txt"], "2 names"),
    ("missing labels", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--labels", "{d}/none.txt"], "labels file"),
    ("mean without std", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--mean", "0.5"], "--mean and --std"),
    ("mean wrong channels", ["{d}/linear.onnx", "{d}/a.png", "-m", "geex", "--mean", "0.5,0.5", "--std", "1,1"],
     "channel"),
    ("duplicate stems", ["{d}/linear.onnx", "{d}/c.npy", "{d}/sub/c.npy", "-m", "geex"], "share the name"),
]


def _fill(argv, d: Path, out: Path) -> list[str]:
    return [a.format(d=d) for a in argv] + ["--out", str(out), "-n", "16"] if "--queries" not in argv else \
        [a.format(d=d) for a in argv] + ["--out", str(out)]


@pytest.mark.parametrize("case,argv,phrase", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_no_output(workdir, run_cli, case, argv, phrase):
    if case == "cuda unavailable":
        from onnxplain.models.onnx import cuda_available

        if cuda_available():
            pytest.skip("CUDA is available here")
    if case == "duplicate stems":
        (workdir / "sub").mkdir()
        (workdir / "sub" / "c.npy").write_bytes((workdir / "c.npy").read_bytes())
    out = workdir / "out"
    code, stdout, stderr = run_cli("explain", *_fill(argv, workdir, out))
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert phrase in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists()  # nothing written, not even the directory


def test_output_dir_that_is_a_file(workdir, run_cli):
    target = workdir / "notes.txt"
    before = target.read_bytes()
    code, _, err = run_cli("explain", workdir / "linear.onnx", workdir / "a.png", "-m", "geex", "--out", target)
    assert code == 2 and "not a directory" in err and len(err.strip().splitlines()) == 1
    assert target.read_bytes() == before
    code, _, err = run_cli("explain", workdir / "linear.onnx", workdir / "a.png", "-m", "geex", "--out", target / "sub")
    assert code == 2 and "is a file" in err


def test_output_dir_not_writable(workdir, run_cli, monkeypatch):
    out = workdir / "ro"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o500)
    else:  # root ignores permission bits: make the probe fail the way a read-only mount would
        import tempfile

        def deny(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "TemporaryFile", deny)
    try:
        code, _, err = run_cli("explain", workdir / "linear.onnx", workdir / "a.png", "-m", "geex", "--out", out)
    finally:
        out.chmod(0o700)
    assert code == 2 and "not writable" in err and len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


def test_cuda_request_reports_device_error(workdir, run_cli, monkeypatch):
    """Even where CUDA exists, an unusable device maps to exit 2 (the adapter raises DeviceUnavailableError)."""
    import onnxplain.models.onnx as onnx_mod

    def unavailable(device):
        raise DeviceUnavailableError(f"device {device!r} was requested but CUDA is not available on this machine.")

    monkeypatch.setattr(onnx_mod, "ort_device", unavailable)
    code, _, err = run_cli("explain", workdir / "linear.onnx", workdir / "a.png", "-m", "geex",
                           "--device", "cuda:0", "--out", workdir / "o")
    assert code == 2 and "CUDA is not available" in err
    assert not (workdir / "o").exists()


def test_failure_midway_leaves_only_complete_files(workdir, run_cli, monkeypatch, fail_on_call):
    """A method that dies on the second image: the first image's files are whole, nothing is half-written."""
    from onnxplain.blackbox.geex import GEEX

    original = fail_on_call(GEEX, 2)
    out = workdir / "out"
    code, _, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", workdir / "b.jpg",
                           "-m", "geex", "-n", "16", "--out", out)
    assert code == 1
    assert err.startswith("onnxplain: internal error: RuntimeError: boom") and len(err.strip().splitlines()) == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == ["c.geex.npy", "c.geex.png", "results.json"]  # no temp files, no b.* files
    # a re-run resumes: the first image is skipped, the second computed
    monkeypatch.setattr(GEEX, "explain", original)
    code, stdout, _ = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", workdir / "b.jpg",
                              "-m", "geex", "-n", "16", "--out", out)
    assert code == 0 and "1 output(s) already existed" in stdout


def test_internal_error_traceback_only_with_debug(workdir, run_cli, monkeypatch):
    from onnxplain.blackbox.geex import GEEX

    def broken(self, model, x, target=None):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(GEEX, "explain", broken)
    argv = ["explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "geex", "-n", "8", "--out", workdir / "o"]
    code, _, err = run_cli(*argv)
    assert code == 1 and "Traceback" not in err and "ZeroDivisionError: bug" in err and "--debug" in err
    code, _, err = run_cli(*argv, "--debug")
    assert code == 1 and "Traceback" in err
    monkeypatch.setenv("ONNXPLAIN_DEBUG", "1")
    code, _, err = run_cli(*argv)
    assert code == 1 and "Traceback" in err


def test_entry_point_in_a_subprocess(workdir):
    """The real process: exit code 2, one stderr line, nothing on stdout, no output directory."""
    out = workdir / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "onnxplain.cli", "explain", str(workdir / "linear.onnx"), str(workdir / "a.png"),
         "-m", "geex", "--target", "7", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["onnxplain: error: target 7 is out of range for a model with 3 classes."]
    assert proc.stdout == "" and not out.exists()


def test_usage_errors_are_one_line(run_cli):
    code, _, err = run_cli("explain")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "required" in err
    code, _, err = run_cli("frobnicate")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "invalid choice" in err
    code, out, _ = run_cli("--help")
    assert code == 0 and "examples:" in out and "exit codes" in out
    for command in ("demo", "explain", "compare", "evaluate", "export", "bench"):
        code, out, _ = run_cli(command, "--help")
        assert code == 0 and "examples:" in out, command
