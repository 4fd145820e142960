"""``onnxplain compare``: black-box maps of the ONNX model against white-box maps of its torch source.

Parsing and printing only: the work is :mod:`onnxplain.pipeline.compare`.
"""

from __future__ import annotations

import argparse
import shlex
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
    file_digest,
    format_table,
    load_labels,
    method_list,
    method_names,
    normalize_from,
    note_unused,
    positive_int,
    unique_stems,
)
from onnxplain.cli._models import add_torch_options, load_torch_module, model_identity, open_query_model
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
    add_model_options(p, num_classes=False)  # --num-classes: the torch options (one count for both)
    add_common(p)
    p.set_defaults(run=run)


def add_method_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("methods and metrics")
    group.add_argument("--blackbox", default=DEFAULT_BLACKBOX, help=f"black-box methods (default {DEFAULT_BLACKBOX})")
    group.add_argument("--whitebox", default=DEFAULT_WHITEBOX, help=f"white-box methods (default {DEFAULT_WHITEBOX})")
    group.add_argument("--queries", "-n", type=positive_int, default=None, help="query budget per black-box map")
    group.add_argument("--steps", type=positive_int, default=None, help="steps/samples per white-box map")
    group.add_argument("--baseline", default=None,
                       help="x̂ of the methods that use one (GEEX, RISE, IG): zero, blur, blur(k,sigma), a number "
                       "or a .npy file")
    group.add_argument(
        "--metrics", default="aopc_deletion,insertion_auc,deletion_auc", help="faithfulness metrics (query-only)"
    )
    group.add_argument("--metric-step", type=positive_int, default=None, help="pixels per curve step (default ~1%%)")


def torch_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; an explicit CUDA request must be satisfiable."""
    from onnxplain.devices import torch_device as resolve

    return str(resolve(device))


def build_runs(
    args: argparse.Namespace, onnx_model: Any, module: Any, identities: dict[str, dict[str, Any]],
    budgets: dict[str, dict[str, Any]] | None = None,
) -> list[Any]:
    """Black-box runs on the ONNX model, white-box runs on the torch module (``budgets``: per-method
    defaults, overridden by --queries/--steps); every option reaches each method through the registry."""
    from onnxplain.pipeline.maps import MethodRun
    from onnxplain.registry import build_method

    blackbox = method_names([args.blackbox], "black-box") if args.blackbox else []
    whitebox = method_names([args.whitebox], "white-box") if args.whitebox else []
    if not blackbox and not whitebox:
        raise InvalidInputError("no methods: give --blackbox and/or --whitebox.")
    budgets = budgets or {}
    common = {"seed": args.seed, "batch_size": args.batch_size, "baseline": args.baseline}
    device = torch_device(args.device)
    runs = [
        MethodRun(m, build_method(m, kind="black-box", budget=args.queries, extra=budgets.get(m), **common),
                  onnx_model, identities["onnx"])
        for m in blackbox
    ] + [
        MethodRun(m, build_method(m, kind="white-box", budget=args.steps, extra={"device": device, **budgets.get(m, {})},
                                  **common), module, {**identities["torch"], "device": device})
        for m in whitebox
    ]
    note_unused(Console(args), runs, baseline=args.baseline, queries=args.queries, steps=args.steps)
    return runs


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.images import load_images
    from onnxplain.pipeline.compare import CompareJob
    from onnxplain.registry import get_metric

    con = Console(args)
    metrics = [get_metric(name).name for name in method_list([args.metrics])]
    out = check_output_dir(args.out)
    check_files_exist(args.images, "image file")
    names = unique_stems(args.images)
    preprocess = normalize_from(args.mean, args.std)
    args.baseline = baseline_spec(args.baseline)
    device = torch_device(args.device)
    onnx_model = open_query_model(args.onnx, args, preprocess)
    module = load_torch_module(
        args.torch_spec, args.weights, num_classes=args.num_classes, mean=args.torch_mean, std=args.torch_std
    )
    identities = {"onnx": model_identity(args.onnx, args, preprocess), "torch": _torch_identity(args)}
    job = CompareJob(
        onnx_model=onnx_model, torch_module=module, batch=load_images(args.images, onnx_model.input_shape),
        names=names, sources=[str(p) for p in args.images],
        labels=load_labels(args.labels, onnx_model.num_classes, getattr(onnx_model, "labels", None)),
        runs=build_runs(args, onnx_model, module, identities), target=args.target, metrics=metrics,
        metric_step=args.metric_step, seed=args.seed, device=device, batch_size=args.batch_size,
        parity_tol=args.parity_tol, force=args.force, settings=run_settings(args, device, "method default"),
        model_info=_model_info(args, onnx_model, preprocess),
        command="onnxplain " + " ".join(shlex.quote(a) for a in getattr(args, "argv", ["compare"])),
    )
    return run_job(job, out, con)


def _torch_identity(args: argparse.Namespace) -> dict[str, Any]:
    weights = file_digest(args.weights) if args.weights is not None and Path(args.weights).is_file() else None
    return {"torch": args.torch_spec, "weights": weights, "torch_mean": args.torch_mean, "torch_std": args.torch_std}


def run_settings(args: argparse.Namespace, device: str, default_budget: str) -> dict[str, Any]:
    """The run's settings as the report and results.json show them."""
    return {
        "seed": args.seed,
        "queries per black-box map": args.queries if args.queries is not None else default_budget,
        "steps per white-box map": args.steps if args.steps is not None else default_budget,
        "baseline": baseline_text(args.baseline),
        "device": device,
        "batch size": args.batch_size if args.batch_size is not None else "auto",
    }


def _model_info(args: argparse.Namespace, onnx_model: Any, preprocess: Any) -> dict[str, Any]:
    return {
        "ONNX model": args.onnx,
        "torch model": args.torch_spec + (f" + {args.weights}" if args.weights else ""),
        "input shape": tuple(onnx_model.input_shape),
        "classes": int(onnx_model.num_classes),
        "ONNX device": str(getattr(onnx_model, "device", "cpu")),
        "ONNX preprocessing": f"mean {preprocess.mean}, std {preprocess.std}" if preprocess else "none",
    }


def run_job(job: Any, out: Path, con: Console) -> dict[str, Any]:
    """Parity (printed first), then the pipeline; prints the summary and agreement tables."""
    from onnxplain.pipeline.compare import compare_parity, run_compare

    parity = compare_parity(job)
    if parity is not None:
        con.say(
            f"model parity: max |Δp| = {parity['max |Δ probability|']:.3g}, top-1 agreement "
            f"{parity['top-1 agreement (explicands)']:.0%} on the images, "
            f"{parity['top-1 agreement (uniform noise)']:.0%} on noise — " + ("OK" if parity["ok"] else "MISMATCH")
        )
        if not parity["ok"]:
            con.note(
                "onnxplain: warning: the ONNX and torch models disagree; white-box maps explain a different "
                "function (check --mean/--std and --torch-mean/--torch-std)."
            )
    result = run_compare(job, out, parity=parity, progress=con.progress())
    _print(con, job, result, out)
    con.emit_json(result.document)
    return result.document


def _print(con: Console, job: Any, result: Any, out: Path) -> None:
    from onnxplain.pipeline.evaluate import agreement_headers, agreement_rows

    con.say(f"evaluated {len(result.summary)} method(s) × {len(job.batch)} image(s) with "
            f"{', '.join(job.metrics)} (step {result.step} px)")
    headers = ["method", "kind", *job.metrics, "queries", "backward", "seconds"]
    rows = [
        (m, s["kind"], *(s[name] for name in job.metrics), s["n_queries"], s["n_backward"], s["seconds"])
        for m, s in result.summary.items()
    ]
    con.say(format_table(headers, rows))
    if result.agreement:
        kinds = {run.name: run.kind for run in job.runs}
        con.say("agreement between methods (mean over images; rho = Spearman):")
        con.say(format_table(["method", "vs", *agreement_headers(result.agreement)],
                             agreement_rows(list(kinds), kinds, result.agreement)))
    if result.reused:
        con.say(f"{result.reused} map(s) were reused from an earlier run with the same settings (use --force to redo).")
    con.say(f"report: {out / 'report.html'}")
