"""``onnxplain explain --task detect``: black-box maps of an object detector's detections.

Parsing and printing only: the work is :func:`onnxplain.pipeline.detect.run_detect`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from onnxplain.cli._common import (
    Console,
    baseline_spec,
    check_files_exist,
    check_output_dir,
    format_table,
    method_names,
    unique_stems,
)
from onnxplain.errors import InvalidInputError


def detection_targets(text: str | None) -> Any:
    """``--target``: ``all`` (default), detection indices or class names, comma-separated."""
    if text is None or text.strip() == "all":
        return "all"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise InvalidInputError("--target must be all, detection indices or class names.")
    return [int(p) if p.isdigit() else p for p in parts]


def _detector(args: argparse.Namespace) -> Any:
    from onnxplain.cli._models import demo_path, is_url
    from onnxplain.models.detector import open_detector

    options: dict[str, Any] = {"device": args.device, "channel_order": args.channel_order,
                               "batch_size": args.batch_size if args.batch_size is not None else "auto"}
    if args.decoder != "auto":
        options["decoder"] = args.decoder
    if args.imgsz is not None:
        options["imgsz"] = args.imgsz
    return open_detector(args.model if is_url(args.model) else demo_path(args.model), **options)


def run_detection(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.pipeline.detect import DetectJob, run_detect
    from onnxplain.registry import build_method

    con = Console(args)
    methods = method_names(args.method, "black-box")
    if not methods:
        raise InvalidInputError("give at least one --method.")
    if args.backend == "ray":
        raise InvalidInputError("--backend ray explains classifiers only; drop it with --task detect.")
    out = check_output_dir(args.out)
    check_files_exist(args.images, "image file")
    args.baseline = baseline_spec(args.baseline)
    detector = _detector(args)
    explainers = {m: build_method(m, kind="black-box", budget=args.queries, seed=args.seed,
                                  batch_size=args.batch_size, baseline=args.baseline) for m in methods}
    settings = {"methods": methods, "queries": args.queries, "seed": args.seed, "target": args.target,
                "conf": args.conf, "iou": args.iou, "objectness": args.objectness}
    job = DetectJob(detector=detector, photos=[Path(p) for p in args.images], ids=unique_stems(args.images),
                    methods=explainers, targets=detection_targets(args.target), conf=args.conf, iou=args.iou,
                    objectness=args.objectness, force=args.force, model_info=detector.describe(), settings=settings)
    result = run_detect(job, out, progress=con.progress())
    rows = [(Path(r["image"]).name, r["method"], d["label"], d["n_queries"], d["files"][1])
            for r in result.records for d in r["detections"]]
    con.say(format_table(["image", "method", "detection", "queries", "overlay"], rows))
    if result.reused:
        con.say(f"{result.reused} output(s) already existed with the same settings and were kept (use --force to redo).")
    con.say(f"wrote {len(rows)} map(s) and {out / 'results.json'}")
    con.emit_json(result.document)
    return result.document
