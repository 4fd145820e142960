"""``onnxplain explain``: black-box maps of an ONNX model (or a KServe-v2 endpoint) for image files."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain.cli._common import (
    Console,
    QueryProgress,
    add_common,
    add_model_options,
    build_method,
    check_files_exist,
    check_output_dir,
    format_table,
    item_progress,
    load_labels,
    make_output_dir,
    method_list,
    normalize_from,
    positive_int,
    read_json,
    resolve_method,
    shape_arg,
    unique_stems,
    write_json,
    write_npy,
)
from onnxplain.cli._models import is_url, open_query_model, remote_options
from onnxplain.errors import InvalidInputError, NonFiniteOutputError

RESULTS = "results.json"
SCHEMA_VERSION = 1

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
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted class)")
    p.add_argument("--out", "-o", type=Path, required=True, help="output directory")
    p.add_argument("--force", action="store_true", help="recompute outputs that already exist")
    p.add_argument("--input-shape", type=shape_arg, default=None, help="C,H,W when the model leaves it dynamic")
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
    add_model_options(p)
    add_common(p)
    p.set_defaults(run=run)


def _settings_key(fields: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _model_identity(source: str) -> str:
    if is_url(source):
        return source
    from onnxplain.cli._common import file_digest

    path = Path(source)
    if source == "demo" and not path.exists():
        from onnxplain.demo import demo_onnx_path

        path = demo_onnx_path()
    return file_digest(path)


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


def predict_all(model: Any, batch: np.ndarray, target: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(targets, target scores, all scores)`` with one query per explicand (non-finite scores raise)."""
    from onnxplain.checks import check_targets

    t = check_targets(target, len(batch), model.num_classes)
    scores = np.asarray(model(batch), dtype=np.float64)
    if t is None:
        t = scores.argmax(axis=1).astype(np.int64)
    return t, scores[np.arange(len(batch)), t], scores


def check_attributions(exp: Any, shape: tuple[int, ...], method: str) -> np.ndarray:
    a = np.asarray(exp.attributions)
    if a.shape != shape:
        raise RuntimeError(f"{method} returned attributions of shape {a.shape}, expected {shape}.")
    if not np.isfinite(a).all():
        raise NonFiniteOutputError(f"{method} produced non-finite attributions (the model's scores may overflow).")
    return a


def record_of(exp: Any) -> dict[str, Any]:
    """The JSON-ready parts of an Explanation a result record carries."""
    d = exp.to_dict()
    keep = ("method", "target", "score", "baseline_score", "n_queries", "n_backward", "seconds", "model_seconds",
            "params", "diagnostics", "completeness_gap", "shape")
    return {k: d.get(k) for k in keep}


def _run_dataset(
    args: argparse.Namespace,
    methods: list[str],
    explainers: list[Any],
    stems: list[str],
    targets: np.ndarray,
    preprocess: Any,
    out: Path,
    con: Console,
) -> dict[str, Any]:
    """Run every method with :func:`onnxplain.distributed.explain_dataset`; its stores live in DIR/.runs/.

    Each image is explained with the seed ``image_seed(--seed, image name)`` (so results do not
    depend on scheduling); a failed image stops the command with its error, after the others finished.
    """
    from onnxplain.cli._common import BUDGET_PARAMS, _first_param
    from onnxplain.distributed import MethodSpec, OnnxModelSpec, RemoteModelSpec, explain_dataset

    if is_url(args.model):
        options = remote_options(
            layout=args.layout, batch_size=args.batch_size, preprocess=preprocess, input_shape=args.input_shape
        )
        model_spec: Any = RemoteModelSpec(args.model, options)
    else:
        model_spec = OnnxModelSpec(
            path=str(Path(args.model).resolve()),
            batch_size=args.batch_size if args.batch_size is not None else "auto",
            preprocess=preprocess,
            layout=args.layout,
            input_shape=args.input_shape,
        )
    runs = {}
    for method, explainer in zip(methods, explainers, strict=True):
        params: dict[str, Any] = {}
        key = _first_param(type(explainer), BUDGET_PARAMS)
        if args.queries is not None and key is not None:
            params[key] = args.queries
        if args.batch_size is not None and _first_param(type(explainer), ("batch_size",)):
            params["batch_size"] = args.batch_size
        result = explain_dataset(
            [str(Path(p).resolve()) for p in args.images],
            model_spec,
            MethodSpec(method, params),
            out=out / ".runs" / method,
            num_workers=args.workers,
            seed=args.seed,
            ids=stems,
            targets=[int(t) for t in targets],
            progress=con.progress,
        )
        if result.errors:
            first = result.errors[0]
            raise InvalidInputError(f"{method} failed on image {first['id']!r}: {first.get('error')}")
        runs[method] = result
    return runs


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.images import load_images
    from onnxplain.report.heatmap import display_factor, overlay, save_png, upscale

    con = Console(args)
    methods = method_list(args.method)
    if not methods:
        raise InvalidInputError("give at least one --method.")
    for m in methods:
        resolve_method(m, blackbox=True)
    out = check_output_dir(args.out)
    check_files_exist(args.images, "image file")
    stems = unique_stems(args.images)
    preprocess = normalize_from(args.mean, args.std)

    model = open_query_model(
        args.model,
        device=args.device,
        batch_size=args.batch_size,
        preprocess=preprocess,
        layout=args.layout,
        input_shape=args.input_shape,
    )
    labels = load_labels(args.labels, model.num_classes, getattr(model, "labels", None))
    batch = load_images(args.images, model.input_shape)
    targets, scores, _ = predict_all(model, batch, args.target)
    explainers = [
        build_method(m, blackbox=True, budget=args.queries, seed=args.seed, batch_size=args.batch_size)
        for m in methods
    ]
    if args.backend == "ray" and args.workers < 0:
        raise InvalidInputError(f"--workers must be ≥ 0, got {args.workers}.")

    settings = {
        "methods": methods,
        "queries": args.queries,
        "seed": args.seed,
        "target": args.target,
        "batch_size": args.batch_size,
        "device": args.device,
        "backend": args.backend,
        "workers": args.workers if args.backend == "ray" else None,
    }
    model_info = _describe_model(model, args.model, preprocess, args.layout)
    identity = _model_identity(args.model)
    model_key = _settings_key({"model": identity, "mean": model_info["mean"], "std": model_info["std"],
                               "layout": args.layout})
    make_output_dir(out)
    previous = read_json(out / RESULTS)
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    if isinstance(previous, dict) and previous.get("schema") == SCHEMA_VERSION:
        for rec in previous.get("results", []):
            if isinstance(rec, dict) and {"image", "method", "settings_key", "files"} <= rec.keys():
                kept[(rec["image"], rec["method"])] = rec

    records: dict[tuple[str, str], dict[str, Any]] = {}

    def document() -> dict[str, Any]:
        ordered = [records[k] for k in records]
        # Earlier records for other images/methods stay listed while their files exist and the
        # model (and its preprocessing) is the same one.
        ordered += [
            rec
            for k, rec in kept.items()
            if k not in records
            and rec.get("model_key") == model_key
            and all((out / name).is_file() for name in rec["files"].values())
        ]
        return {
            "schema": SCHEMA_VERSION,
            "command": "explain",
            "model": model_info,
            "settings": settings,
            "results": ordered,
        }

    skipped = 0
    total = len(args.images) * len(methods)
    dataset_runs = None
    if args.backend == "ray":
        dataset_runs = _run_dataset(args, methods, explainers, stems, targets, preprocess, out, con)
    with item_progress(total, "explain", con.progress) as bar:
        for i, (path, stem) in enumerate(zip(args.images, stems, strict=True)):
            image_key = str(Path(path).resolve())
            for method, explainer in zip(methods, explainers, strict=True):
                key_fields = {
                    "model": identity,
                    "mean": model_info["mean"],
                    "std": model_info["std"],
                    "layout": args.layout,
                    "method": method,
                    "queries": args.queries,
                    "seed": args.seed,
                    "target": int(targets[i]),
                    "backend": args.backend,
                }
                skey = _settings_key(key_fields)
                npy, png = out / f"{stem}.{method}.npy", out / f"{stem}.{method}.png"
                prev = kept.get((image_key, method))
                if (
                    not args.force
                    and prev is not None
                    and prev.get("settings_key") == skey
                    and npy.is_file()
                    and png.is_file()
                ):
                    records[(image_key, method)] = prev
                    skipped += 1
                    bar.update(1)
                    continue
                if dataset_runs is not None:
                    exp, wall = dataset_runs[method].load(stem), 0.0
                else:
                    with QueryProgress(model, args.queries, f"{stem} · {method}", con.progress):
                        t0 = time.perf_counter()
                        exp = explainer.explain(model, batch[i], target=int(targets[i]))
                        wall = time.perf_counter() - t0
                a = check_attributions(exp, tuple(batch[i].shape), method)
                sal = a.mean(axis=0) if a.ndim == 3 else a.reshape(a.shape[-2:])
                rgb = overlay(batch[i], sal)
                write_npy(npy, a)
                save_png(png, upscale(rgb, display_factor(*rgb.shape[:2])))
                rec = {
                    "image": image_key,
                    "stem": stem,
                    **record_of(exp),
                    "method": method,
                    "target": int(targets[i]),
                    "label": labels[int(targets[i])],
                    "model_score": float(scores[i]),
                    "wall_seconds": wall,
                    "files": {"npy": npy.name, "png": png.name},
                    "settings_key": skey,
                    "model_key": model_key,
                }
                records[(image_key, method)] = rec
                write_json(out / RESULTS, document())
                bar.update(1)
    doc = document()
    write_json(out / RESULTS, doc)

    rows = [
        (Path(r["image"]).name, r["method"], f"{r['target']} ({r['label']})", float(r["model_score"]),
         int(r.get("n_queries") or 0), float(r.get("seconds") or 0.0), r["files"]["png"])
        for r in records.values()
    ]
    con.say(format_table(["image", "method", "target", "score", "queries", "seconds", "overlay"], rows))
    if skipped:
        con.say(f"{skipped} output(s) already existed with the same settings and were kept (use --force to redo).")
    con.say(f"wrote {len(records) - skipped} map(s) and {out / RESULTS}")
    con.emit_json(doc)
    return doc
