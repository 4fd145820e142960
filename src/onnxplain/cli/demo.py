"""``onnxplain demo``: the shipped MNIST CNN and digits, every method, evaluated, in one HTML report.

Needs nothing but the package: the model (ONNX and torch weights) and the digits are package data.
Budgets are chosen so that the whole demo finishes well under two minutes on two CPU cores
(see ``DEMO_BUDGETS``; measured numbers are in the project's benchmarks README).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from onnxplain.cli._common import Console, add_common, check_output_dir, positive_int

# Per-method constructor arguments of the demo. Black-box budgets are the GEEX paper's MNIST scale
# (n* = 2000 is enough for a 28×28 digit); the three iterative white-box methods run at half their
# paper step/sample counts so that the demo stays well under two minutes on two busy CPU cores
# (measured: see the CLI section of benchmarks/README.md). Every value used is in the report.
DEMO_BUDGETS: dict[str, dict[str, Any]] = {
    "geex": {"n_queries": 2000},
    "rise": {"n_masks": 2000},
    "lime": {"n_samples": 1000},
    "ig": {"steps": 64},
    "smoothgrad": {"samples": 64},
    "agi": {"steps": 10},
    # The MNIST CNN needs 28×28 input: AttEXplore's input diversity resizes instead of padding.
    "attexplore": {"input_diversity": "resize", "n_approx": 10},
    "la": {"steps": 10},
}
DEMO_IMAGES = 3

EXAMPLES = """\
examples:
  onnxplain demo                     writes ./onnxplain-demo/report.html
  onnxplain demo --out /tmp/demo --images 5 --seed 1
  onnxplain demo --json --quiet      machine-readable summary only
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="the shipped MNIST CNN and digits: black-box vs white-box maps, evaluated, HTML report",
        description="Run GEEX, RISE and LIME on the shipped ONNX model and IG, SmoothGrad, AGI, AttEXplore "
        "and LA on its torch twin, for a few shipped MNIST digits; evaluate every map and write a report.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", "-o", type=Path, default=Path("onnxplain-demo"), help="output directory (default ./onnxplain-demo)")
    p.add_argument("--images", type=positive_int, default=DEMO_IMAGES, help=f"how many digits (default {DEMO_IMAGES})")
    from onnxplain.cli.compare import add_method_options

    add_method_options(p)
    p.add_argument("--force", action="store_true", help="recompute maps that already exist")
    add_common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.cli._common import baseline_spec, file_digest, method_list
    from onnxplain.cli.compare import build_runs, run_job, run_settings, torch_device
    from onnxplain.demo import LABELS, demo_onnx_path, load_demo_digits, load_demo_model, load_demo_torch
    from onnxplain.errors import InvalidInputError
    from onnxplain.pipeline.compare import CompareJob
    from onnxplain.registry import get_metric

    con = Console(args)
    out = check_output_dir(args.out)
    metrics = [get_metric(name).name for name in method_list([args.metrics])]
    args.baseline = baseline_spec(args.baseline)
    device = torch_device(args.device)
    x, y = load_demo_digits()
    if args.images > len(x):
        raise InvalidInputError(f"the demo ships {len(x)} digits; --images must be at most {len(x)}.")
    x, y = x[: args.images], y[: args.images]
    onnx_model = load_demo_model(
        device=args.device, batch_size=args.batch_size if args.batch_size is not None else "auto"
    )
    module = load_demo_torch()
    identities = {"onnx": {"model": file_digest(demo_onnx_path())}, "torch": {"torch": "demo"}}
    job = CompareJob(
        onnx_model=onnx_model, torch_module=module, batch=x, names=[f"digit{i}" for i in range(len(x))],
        sources=[f"shipped MNIST test digit #{i} (label {int(y[i])})" for i in range(len(x))],
        labels=list(LABELS), true_labels=[LABELS[int(v)] for v in y],
        runs=build_runs(args, onnx_model, module, identities, DEMO_BUDGETS), metrics=metrics,
        metric_step=args.metric_step, seed=args.seed, device=device, batch_size=args.batch_size, force=args.force,
        settings={"digits": len(x), **run_settings(args, device, "demo budget (see methods)")},
        model_info={
            "ONNX model": str(demo_onnx_path()),
            "torch model": "onnxplain.demo.load_demo_torch() (same weights, normalisation inside)",
            "input shape": tuple(onnx_model.input_shape),
            "classes": int(onnx_model.num_classes),
            "ONNX device": str(getattr(onnx_model, "device", "cpu")),
        },
        title="onnxplain demo: MNIST CNN, black-box (ONNX) vs white-box (PyTorch)",
        command="onnxplain " + " ".join(shlex.quote(a) for a in getattr(args, "argv", ["demo"])),
        command_name="demo",
    )
    return run_job(job, out, con)
