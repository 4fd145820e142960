"""``onnxplain compare``: black-box maps of the ONNX model against white-box maps of its torch source."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from onnxplain.cli._common import (
    Console,
    add_common,
    add_model_options,
    build_method,
    check_files_exist,
    check_output_dir,
    file_digest,
    load_labels,
    make_output_dir,
    method_list,
    normalize_from,
    positive_int,
    resolve_method,
    unique_stems,
)
from onnxplain.cli._models import add_torch_options, load_torch_module, open_query_model
from onnxplain.errors import InvalidInputError

DEFAULT_BLACKBOX = "geex,rise,lime"
DEFAULT_WHITEBOX = "ig,smoothgrad,agi,attexplore,la"

EXAMPLES = """\
examples:
  onnxplain compare --onnx resnet18.onnx --torch resnet18 --weights r18.pt cat.png dog.png --out cmp/
  onnxplain compare --onnx model.onnx --torch mypkg.nets:Net --weights net.pt --torch-mean 0.5 --torch-std 0.5 \\
      digit.png --blackbox geex --whitebox ig,la --queries 2000 --out cmp/
  onnxplain compare --onnx demo --torch demo digit.png --out cmp/      (the shipped MNIST CNN and its torch twin)

The parity of the two models is checked and reported first (a mismatch is a warning: the white-box
maps would explain a different function). Every map is evaluated on the ONNX model, by queries.
Writes DIR/report.html, DIR/results.json and DIR/maps/<image>.<method>.npy.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="black-box (ONNX) vs white-box (PyTorch) maps, evaluated, in one HTML report",
        description="Explain images with black-box methods on the ONNX model and white-box methods on the "
        "torch model it came from; check their parity, evaluate every map, write an HTML report.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--onnx", required=True, metavar="MODEL", help="the .onnx file (or a KServe-v2 model URL)")
    add_torch_options(p, required=True)
    p.add_argument("images", metavar="IMAGE", nargs="+", type=Path, help="PNG/JPEG files or .npy arrays")
    p.add_argument("--out", "-o", type=Path, required=True, help="output directory")
    add_method_options(p)
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the ONNX model's prediction)")
    p.add_argument("--parity-tol", type=float, default=1e-3, help="largest accepted |Δ probability| (default 1e-3)")
    p.add_argument("--force", action="store_true", help="recompute maps that already exist")
    add_model_options(p)
    add_common(p)
    p.set_defaults(run=run)


def add_method_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("methods and metrics")
    group.add_argument("--blackbox", default=DEFAULT_BLACKBOX, help=f"black-box methods (default {DEFAULT_BLACKBOX})")
    group.add_argument("--whitebox", default=DEFAULT_WHITEBOX, help=f"white-box methods (default {DEFAULT_WHITEBOX})")
    group.add_argument("--queries", "-n", type=positive_int, default=None, help="query budget per black-box map")
    group.add_argument("--steps", type=positive_int, default=None, help="steps/samples per white-box map")
    group.add_argument(
        "--metrics", default="aopc_deletion,insertion_auc,deletion_auc", help="faithfulness metrics (query-only)"
    )
    group.add_argument("--metric-step", type=positive_int, default=None, help="pixels per curve step (default ~1%%)")


def build_methods(args: argparse.Namespace, budgets: dict[str, dict[str, Any]] | None = None) -> tuple[dict, dict]:
    """Configured black-box and white-box explainers from the options (``budgets``: per-method defaults)."""
    budgets = budgets or {}
    blackbox_names = method_list([args.blackbox]) if args.blackbox else []
    whitebox_names = method_list([args.whitebox]) if args.whitebox else []
    if not blackbox_names and not whitebox_names:
        raise InvalidInputError("no methods: give --blackbox and/or --whitebox.")
    for name in blackbox_names:
        resolve_method(name, blackbox=True)
    for name in whitebox_names:
        resolve_method(name, blackbox=False)
    device = "cpu" if args.device == "auto" else args.device
    if args.device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    blackbox = {
        m: build_method(m, blackbox=True, budget=args.queries, seed=args.seed, batch_size=args.batch_size,
                        extra=budgets.get(m) if args.queries is None else _without_budget(budgets.get(m)))
        for m in blackbox_names
    }
    whitebox = {
        m: build_method(m, blackbox=False, budget=args.steps, seed=args.seed, batch_size=args.batch_size,
                        extra={"device": device, **((budgets.get(m) or {}) if args.steps is None
                                                    else _without_budget(budgets.get(m)))})
        for m in whitebox_names
    }
    return blackbox, whitebox


def _without_budget(params: dict[str, Any] | None) -> dict[str, Any]:
    from onnxplain.cli._common import BUDGET_PARAMS, STEP_PARAMS

    return {k: v for k, v in (params or {}).items() if k not in BUDGET_PARAMS and k not in STEP_PARAMS}


def torch_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; an explicit CUDA request must be satisfiable."""
    from onnxplain.devices import torch_device as resolve

    return str(resolve(device))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.cli._pipeline import Job, run_job
    from onnxplain.images import load_images

    con = Console(args)
    metrics = method_list([args.metrics])
    out = check_output_dir(args.out)
    check_files_exist(args.images, "image file")
    names = unique_stems(args.images)
    preprocess = normalize_from(args.mean, args.std)
    device = torch_device(args.device)
    onnx_model = open_query_model(
        args.onnx, device=args.device, batch_size=args.batch_size, preprocess=preprocess, layout=args.layout
    )
    module = load_torch_module(
        args.torch_spec, args.weights, num_classes=args.num_classes, mean=args.torch_mean, std=args.torch_std
    )
    labels = load_labels(args.labels, onnx_model.num_classes, getattr(onnx_model, "labels", None))
    batch = load_images(args.images, onnx_model.input_shape)
    args.device = device
    blackbox, whitebox = build_methods(args)
    from onnxplain.cli._pipeline import metric_function

    for name in metrics:
        metric_function(name)
    job = Job(
        onnx_model=onnx_model,
        torch_module=module,
        batch=batch,
        names=names,
        sources=[str(p) for p in args.images],
        labels=labels,
        blackbox=blackbox,
        whitebox=whitebox,
        target=args.target,
        metrics=metrics,
        metric_step=args.metric_step,
        seed=args.seed,
        device=device,
        parity_tol=args.parity_tol,
        settings={
            "seed": args.seed,
            "queries per black-box map": args.queries if args.queries is not None else "method default",
            "steps per white-box map": args.steps if args.steps is not None else "method default",
            "device": device,
            "batch size": args.batch_size if args.batch_size is not None else "auto",
        },
        model_info={
            "ONNX model": args.onnx,
            "torch model": args.torch_spec + (f" + {args.weights}" if args.weights else ""),
            "input shape": tuple(onnx_model.input_shape),
            "classes": int(onnx_model.num_classes),
            "ONNX device": str(getattr(onnx_model, "device", "cpu")),
            "ONNX preprocessing": f"mean {preprocess.mean}, std {preprocess.std}" if preprocess else "none",
        },
        command="onnxplain " + " ".join(shlex.quote(a) for a in getattr(args, "argv", ["compare"])),
        command_name="compare",
    )
    make_output_dir(out)
    identity = file_digest(Path(onnx_model.source)) if Path(getattr(onnx_model, "source", "")).is_file() else args.onnx
    doc = run_job(job, out, con, force=args.force, identity=identity)
    con.emit_json(doc)
    return doc
