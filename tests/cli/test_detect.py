"""``onnxplain explain`` on an object detector: found from its metadata, one map per method and
detection with the box drawn, resumable, and bad detection targets refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.models.detector_builders import SQUARE_CONTENT, square_detector_onnx, square_photo


@pytest.fixture
def detector_dir(tmp_path: Path) -> Path:
    (tmp_path / "det.onnx").write_bytes(square_detector_onnx())
    photo = (np.moveaxis(square_photo(), 0, -1) * 255).round().astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "square.png")
    return tmp_path


def test_a_detector_is_explained_per_detection_and_resumed(detector_dir: Path, run_cli) -> None:
    out = detector_dir / "maps"
    args = ("explain", detector_dir / "det.onnx", detector_dir / "square.png", "-m", "rise,geex",
            "--queries", "400", "--out", out, "--quiet")
    code, _, err = run_cli(*args)  # --task auto: the metadata says "detect"
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["command"] == "detect" and len(doc["results"]) == 2
    x1, y1, x2, y2 = SQUARE_CONTENT
    for rec in doc["results"]:
        [det] = rec["detections"]
        assert det["label"].startswith("square") and det["n_queries"] == rec["params"][
            "n_masks" if rec["method"] == "rise" else "n_queries"] + (1 if rec["method"] == "rise" else 2)
        a = np.load(out / det["files"][0]).mean(axis=0)
        peak = np.unravel_index(np.argmax(a), a.shape)
        assert y1 <= peak[0] < y2 and x1 <= peak[1] < x2, (rec["method"], peak)  # the evidence is the square
        assert (out / det["files"][1]).stat().st_size > 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    code, stdout, err = run_cli(*args[:-1])  # not quiet: the reuse is reported
    assert code == 0 and "already existed" in stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")} == stamps


@pytest.mark.parametrize("target", ["giraffe", "5"])
def test_a_detection_that_does_not_exist_is_refused_in_one_line(detector_dir: Path, run_cli, target: str) -> None:
    out = detector_dir / "maps"
    code, _, err = run_cli("explain", detector_dir / "det.onnx", detector_dir / "square.png", "-m", "rise",
                           "--target", target, "--out", out)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_classifier_target_must_be_an_index(workdir: Path, run_cli) -> None:
    code, _, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "rise", "--target", "cat",
                           "--out", workdir / "o")
    assert code == 2 and "--target must be a class index" in err
