"""``onnxplain explain``: black-box maps of an ONNX model (or a KServe-v2 endpoint) for image files.

Parsing and printing only: the work is :func:`onnxplain.pipeline.explain.run_explain`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from onnxplain.cli._common import (
    Console,
    add_common,
    add_model_options,
    baseline_spec,
    baseline_text,
    check_files_exist,
    check_output_dir,
    format_table,
    load_labels,
    method_names,
    normalize_from,
    note_unused,
    positive_int,
    shape_arg,
    unique_stems,
)
from onnxplain.cli._models import model_identity, model_spec, open_query_model
from onnxplain.errors import InvalidInputError

EXAMPLES = """\
examples:
  onnxplain explain model.onnx cat.jpg dog.png --method geex --out maps/
  onnxplain explain demo digit.png --method geex,rise,lime --out maps/      (the shipped MNIST CNN)
  onnxplain explain model.onnx cat.jpg --method geex,rise,lime --queries 4000 --seed 1 --out maps/
  onnxplain explain vendor.onnx x.npy --method lime --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 \\
      --labels imagenet.txt --target 281 --out maps/
  onnxplain explain http://127.0.0.1:8000/v2/models/resnet image.png --method rise --out maps/
  onnxplain explain model.onnx images/*.jpg --method geex --backend ray --workers 4 --out maps/

Writes DIR/<image>.<method>.npy (attributions, the explicand's shape), DIR/<image>.<method>.png
(overlay: red raises the class score, blue lowers it) and DIR/results.json. A re-run skips
outputs that exist and were made with the same settings, unless --force.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="black-box explanations of an ONNX model for image files",
        description="Explain an ONNX model's predictions on images from queries alone (GEEX, GE, RISE, LIME).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model", metavar="MODEL", help="an .onnx file, a KServe-v2 URL http(s)://host/v2/models/NAME, or 'demo'"
    )
    p.add_argument("images", metavar="IMAGE", nargs="+", type=Path, help="PNG/JPEG files, or .npy arrays in the model's input space")
    p.add_argument("--method", "-m", action="append", required=True, help="geex, ge, rise, lime (repeat or comma-separate)")
    p.add_argument("--queries", "-n", type=positive_int, default=None, help="query budget per image and method")
    p.add_argument("--baseline", default=None,
                   help="x̂ of the methods that use one: zero, blur, blur(k,sigma), a number or a .npy file")
    p.add_argument("--target", default=None,
                   help="class index to explain (default: the predicted class); with --task detect: all, "
                        "detection indices or class names, comma-separated (default: all)")
    p.add_argument("--out", "-o", type=Path, required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="recompute outputs that already exist")
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: onnxplain.distributed.explain_dataset on Ray Data (per-image seeds "
        "derived from --seed and the image name, resumable run store in DIR/.runs/<method>)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="Ray actors with --backend ray (0 = the dataset runner in-process)"
    )
    add_detection_options(p)
    add_model_options(p)
    add_common(p)
    p.set_defaults(run=run)


def add_detection_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("object detectors")
    group.add_argument("--task", choices=("auto", "classify", "detect"), default="auto",
                       help="auto: a detector when the ONNX file looks like one (its metadata or outputs); "
                            "a URL detector needs --task detect")
    group.add_argument("--conf", type=float, default=0.25, help="confidence of the detections to explain (0.25)")
    group.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold of that list (0.7)")
    group.add_argument("--decoder", choices=("auto", "yolov5", "yolov8", "yolox", "nms"), default="auto",
                       help="how to read the detector's raw output (auto: from its outputs and metadata)")
    group.add_argument("--imgsz", type=shape_arg, default=None, help="H,W of a detector with a dynamic input size")
    group.add_argument("--objectness", choices=("auto", "model", "max_class", "none"), default="auto",
                       help="O_j in D-RISE's similarity (auto: the model's objectness, else the best class score)")


def _describe_model(model: Any, source: str, preprocess: Any, layout: str) -> dict[str, Any]:
    return {
        "source": source,
        "input_shape": list(model.input_shape),
        "num_classes": int(model.num_classes),
        "device": str(getattr(model, "device", "cpu")),
        "output": getattr(model, "output", "probs"),
        "layout": layout,
        "mean": list(preprocess.mean) if preprocess is not None else None,
        "std": list(preprocess.std) if preprocess is not None else None,
    }


def _settings(args: argparse.Namespace, methods: list[str]) -> dict[str, Any]:
    return {
        "methods": methods,
        "queries": args.queries,
        "baseline": baseline_text(args.baseline),
        "seed": args.seed,
        "target": args.target,
        "batch_size": args.batch_size,
        "device": args.device,
        "backend": args.backend,
        "workers": args.workers if args.backend == "ray" else None,
    }


def _executor(args: argparse.Namespace, methods: list[str], stems: list[str], preprocess: Any, out: Path,
              con: Console) -> Any:
    """None (explain in this process) or the dataset runner for ``--backend ray``."""
    if args.backend != "ray":
        return None
    from onnxplain.pipeline.dataset import DatasetExecutor
    from onnxplain.registry import method_kwargs

    return DatasetExecutor(
        model_spec(args.model, args, preprocess), [str(Path(p).resolve()) for p in args.images], stems,
        out / ".runs",
        {m: method_kwargs(m, budget=args.queries, batch_size=args.batch_size, baseline=args.baseline) for m in methods},
        seed=args.seed, workers=args.workers, force=args.force, bars=con.progress_mode == "bars",
    )


def _is_detection(args: argparse.Namespace) -> bool:
    if args.task != "auto":
        return args.task == "detect"
    from onnxplain.cli._models import demo_path, is_url
    from onnxplain.models.detector import is_detector

    return not is_url(args.model) and is_detector(demo_path(args.model))


def _class_target(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInputError(f"--target must be a class index for a classifier, got {text!r}.") from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    if _is_detection(args):
        from onnxplain.cli.detect import run_detection

        return run_detection(args)
    args.target = _class_target(args.target)
    return _run_classifier(args)


def _run_classifier(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.images import load_images
    from onnxplain.pipeline.cache import settings_key
    from onnxplain.pipeline.explain import ExplainJob, run_explain
    from onnxplain.pipeline.maps import MethodRun
    from onnxplain.registry import build_method

    con = Console(args)
    methods = method_names(args.method, "black-box")
    if not methods:
        raise InvalidInputError("give at least one --method.")
    if args.backend == "ray" and args.workers < 0:
        raise InvalidInputError(f"--workers must be ≥ 0, got {args.workers}.")
    out = check_output_dir(args.out)
    check_files_exist(args.images, "image file")
    stems = unique_stems(args.images)
    preprocess = normalize_from(args.mean, args.std)
    args.baseline = baseline_spec(args.baseline)
    model = open_query_model(args.model, args, preprocess)
    base = model_identity(args.model, args, preprocess)
    identity = {**base, "backend": args.backend}
    runs = [
        MethodRun(m, build_method(m, kind="black-box", budget=args.queries, seed=args.seed,
                                  batch_size=args.batch_size, baseline=args.baseline), model, identity)
        for m in methods
    ]
    note_unused(con, runs, baseline=args.baseline, queries=args.queries)
    job = ExplainJob(
        model=model, batch=load_images(args.images, model.input_shape), ids=stems,
        sources=[str(Path(p).resolve()) for p in args.images],
        labels=load_labels(args.labels, model.num_classes, getattr(model, "labels", None)), runs=runs,
        model_key=settings_key(base), target=args.target, force=args.force,
        model_info=_describe_model(model, args.model, preprocess, args.layout), settings=_settings(args, methods),
    )
    result = run_explain(job, out, executor=_executor(args, methods, stems, preprocess, out, con),
                         progress=con.progress())
    _print(con, result, out)
    return result.document


def _print(con: Console, result: Any, out: Path) -> None:
    rows = [
        (Path(r["image"]).name, r["method"], f"{r['target']} ({r['label']})", float(r["model_score"]),
         int(r.get("n_queries") or 0), float(r.get("seconds") or 0.0), r["files"]["png"])
        for r in result.records
    ]
    con.say(format_table(["image", "method", "target", "score", "queries", "seconds", "overlay"], rows))
    if result.reused:
        con.say(f"{result.reused} output(s) already existed with the same settings and were kept (use --force to redo).")
    con.say(f"wrote {len(result.records) - result.reused} map(s) and {out / 'results.json'}")
    con.emit_json(result.document)
