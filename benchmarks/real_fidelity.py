"""Faithfulness of every method's maps on real ImageNet models and photos (issue 16.2).

    python -m benchmarks.real_fidelity --cache /work/cache/real                # hours on 2 cores; resumable
    python -m benchmarks.real_fidelity --cache /work/cache/real --quick        # smoke run, minutes
    python -m benchmarks.real_fidelity --cache /work/cache/real --report-only  # tables from what is stored

What runs (``benchmarks/fidelity/``):

- **models**: the cache's EfficientNet-Lite0 (3×224×224) and -Lite2 (3×260×260), ImageNet, vendor
  weights (``scripts/build_real_cache.py``); black-box methods query
  ``OnnxModel(path, output="probs", **onnx_kwargs)`` (one session per model for the whole run),
  white-box methods differentiate the torch twin (``real_assets.torch_module``).
- **photos**: the first ``--photos`` (16) of a fixed order: the cache's 15 labelled photos
  (``runner.PREFERRED_PHOTOS``), then the others in manifest order (``sklearn_china`` … see the
  table notes); ImageNet evaluation crops at the model's size. Target = the ONNX model's top class.
- **methods**: every black-box method of ``onnxplain.registry`` at each ``--budgets`` value
  (``cls(**{cls.budget_param: budget}, seed=seed)``, all else at defaults), every white-box method
  at defaults, ``ig-ref`` = ``IntegratedGradients(steps=128, baseline="blur")`` (the GEEX paper's
  reference) and ``random`` (a uniformly random pixel order).
- **metrics** (``fidelity/metrics.py``): the GEEX paper's AOPC (blurred-explicand replacement,
  stride 1 % of the pixels, the authors' ratio-of-means aggregate), RISE's insertion (blur
  substrate) and deletion (black substrate) AUC with the same step, Spearman / top-10 % agreement
  with ``ig-ref`` at full resolution and pooled to 28×28 and 14×14, wall seconds and model calls.

Every map and metric is stored under ``--work`` as soon as it exists (``fidelity/store.py``); a
re-run computes only what is missing. ``--jobs N`` runs N photos at once in worker processes
(each with cores/N threads). Progress and ETA go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import harness as h
from benchmarks import real_assets as ra
from benchmarks.fidelity import metrics as fm
from benchmarks.fidelity import report
from benchmarks.fidelity.methods import MethodError, parse_methods
from benchmarks.fidelity.runner import Plan, choose_photos, run
from benchmarks.fidelity.summary import Row, collect

NAME = "real_fidelity"
GOALS_NAME = "real_fidelity_goals"
DEFAULT_MODELS = ("efficientnet-lite0", "efficientnet-lite2")
DEFAULT_BUDGETS = (1000, 2000, 5000)
PLOT = h.ROOT / "docs" / "real_fidelity.svg"
QUICK = {"photos": 2, "budgets": (200,), "methods": "geex,rise"}


class UsageError(ValueError):
    """A bad option value: one line on stderr, exit status 2."""


def _ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UsageError(f"{what} must be comma-separated integers, got {text!r}.") from None
    if not values or any(v < 0 for v in values) or (what != "--seeds" and any(v == 0 for v in values)):
        raise UsageError(
            f"{what} must be {'non-negative' if what == '--seeds' else 'positive'} integers, got {text!r}."
        )
    return tuple(dict.fromkeys(values))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.real_fidelity", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--cache", type=Path, required=True, help="the real-model cache (scripts/build_real_cache.py)"
    )
    p.add_argument("--models", help=f"comma-separated model names (default: {','.join(DEFAULT_MODELS)})")
    p.add_argument(
        "--photos", type=int, help="number of photos, from a fixed order, labelled first (default 16)"
    )
    p.add_argument("--budgets", help="black-box query budgets (default 1000,2000,5000)")
    p.add_argument("--seeds", default="0", help="seeds per map, averaged per photo (default 0)")
    p.add_argument(
        "--methods", help="comma-separated method keys (default: all registered + ig-ref + random)"
    )
    p.add_argument("--work", type=Path, default=h.CACHE_DIR / NAME, help="where maps and metrics are cached")
    p.add_argument(
        "--jobs", type=int, default=1, help="photos explained at once, in worker processes (default 1)"
    )
    p.add_argument("--plot", type=Path, default=PLOT, help=f"the figure (default {PLOT.relative_to(h.ROOT)})")
    p.add_argument(
        "--no-save", action="store_true", help="print only: no README block, results JSON or plot in docs/"
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 2 photos, budget 200, geex and rise; saves nothing"
    )
    p.add_argument("--report-only", action="store_true", help="compute nothing; tabulate what --work holds")
    return p.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    """The run's plan from the options (``UsageError`` for a bad value)."""
    quick = args.quick
    n_photos = args.photos if args.photos is not None else (QUICK["photos"] if quick else 16)
    if n_photos < 1:
        raise UsageError(f"--photos must be at least 1, got {n_photos}.")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}.")
    budgets = (
        _ints(args.budgets, "--budgets") if args.budgets else (QUICK["budgets"] if quick else DEFAULT_BUDGETS)
    )
    try:
        specs = parse_methods(args.methods or (QUICK["methods"] if quick else None))
    except MethodError as exc:
        raise UsageError(str(exc)) from None
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else DEFAULT_MODELS
    try:
        for model in models:
            ra.model_entry(args.cache, model)
        photos = choose_photos(args.cache, n_photos)
    except ra.MissingCacheError as exc:
        raise UsageError(str(exc)) from None
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    return Plan(
        args.cache,
        models,
        tuple(photos),
        tuple(sorted(budgets)),
        _ints(args.seeds, "--seeds"),
        tuple(specs),
        args.work,
    )


def _shape(cache: Path, model: str) -> tuple[int, int, int]:
    return tuple(ra.model_entry(cache, model)["input_shape"])  # type: ignore[return-value]


def markdown(plan: Plan, rows: dict[str, list[Row]], run_info: dict[str, Any], plot: Path | None) -> str:
    """The README block: protocol, one table per model, the agreement at three scales, the plot."""
    seeds = ", ".join(map(str, plan.seeds))
    parts = [
        "### Real ImageNet models: faithfulness of the maps on photos",
        "",
        f"Command: `{h.command()}`",
        "",
        f"- Photos ({len(plan.photos)}): {', '.join(plan.photos)} (ImageNet evaluation crops); "
        f"target = the ONNX model's top class on each; seeds {seeds} (averaged per photo first).",
        '- Black-box maps query `OnnxModel(output="probs")` (ONNX Runtime, CPU) with each registry class at each '
        "budget (`cls(**{cls.budget_param: budget}, seed=seed)`, all else at its defaults); white-box maps "
        "differentiate the torch twin at defaults; **IG reference** = `IntegratedGradients(steps=128, "
        'baseline="blur")`; **random order** = uniformly random pixel ranks.',
        "- **AOPC, paper protocol** (GEEX paper, ImageNet): deletion in the order of the signed channel-mean map, "
        "deleted pixels take the blurred explicand (Gaussian, kernel 31, σ 5), stride = 1 % of the pixels "
        "(502 at 224², 676 at 260²: 101 points), softmax probability of the predicted class, the authors' "
        "aggregate (curve averaged over photos, then mean of 1 − F̄ₖ/F̄₀); ± = jackknife standard error over photos.",
        "- **Insertion / deletion AUC** (RISE protocol, pixel mode): insertion onto the blurred photo (σ 5, 11×11), "
        "deletion to black, same 1 % step, trapezoid AUC; mean over photos ± standard error.",
        "- **Agreement with the IG reference**: both maps average-pooled to 14×14 (adaptive pooling), Spearman and "
        "top-10 % intersection (20 of 196 cells); the other scales are in the second table.",
        f"- Seconds: wall time of one explanation (mean over photos); load average (1 min) "
        f"{run_info['load_start']:.2f} → {run_info['load_end']:.2f} on {run_info['cpus']} CPUs; "
        f"this invocation took {run_info['minutes']:.1f} min and computed {run_info['explained']} maps "
        "(the others came from the work directory).",
    ]
    for model, model_rows in rows.items():
        c, hh, w = _shape(plan.cache, model)
        parts += ["", f"#### {model} ({c}×{hh}×{w}, step {fm.step_pixels(hh, w)} pixels)", ""]
        parts += [report.model_table(model_rows, len(plan.photos)), ""]
        parts += ["Agreement with the IG reference at three scales (means over photos):", ""]
        parts += [report.agreement_table(model_rows)]
    if plot is not None:
        rel = os.path.relpath(plot, h.BENCH_DIR)
        parts += ["", f"![AOPC and insertion AUC against queries]({rel})"]
    if run_info["failed"]:
        parts += ["", "Failed: " + "; ".join(run_info["failed"])]
    return "\n".join(parts)


def goals_markdown(rows: dict[str, list[Row]]) -> tuple[str, dict[str, Any]]:
    parts = ["### Goals of issue 16 on real photos", "", f"Checked on the rows of `{NAME}` (command above)."]
    data: dict[str, Any] = {}
    for model, model_rows in rows.items():
        goals = report.goals(model_rows)
        data[model] = [{"goal": g.text, "met": g.met, "numbers": g.numbers} for g in goals]
        parts += ["", f"#### {model}", ""] + [g.line() for g in goals]
    return "\n".join(parts), data


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        plan = make_plan(args)
    except UsageError as exc:
        print(f"real_fidelity: error: {exc}", file=sys.stderr)
        return 2
    save = not (args.no_save or args.quick)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    results = [] if args.report_only else run(plan, jobs=args.jobs)
    rows = {m: collect(plan, m, _shape(plan.cache, m)[1:]) for m in plan.models}  # type: ignore[arg-type]
    plot = args.plot if save else plan.work / "real_fidelity.svg"
    from benchmarks.fidelity.plot import write_plot

    write_plot(rows, plot)
    print(f"plot: {plot}", file=sys.stderr)
    failed = [f"{i.model} {i.photo} {i.method}@{i.budget}: {msg}" for r in results for i, msg in r.failed]
    run_info = {
        "minutes": (time.perf_counter() - t0) / 60,
        "load_start": load0,
        "load_end": os.getloadavg()[0],
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "explained": sum(len(r.explained) for r in results),
        "failed": failed,
    }
    text = markdown(plan, rows, run_info, plot if save else None)
    goals_text, goals_data = goals_markdown(rows)
    data = {
        "plan": {
            "models": plan.models,
            "photos": plan.photos,
            "budgets": plan.budgets,
            "seeds": plan.seeds,
            "methods": [s.key for s in plan.specs],
            "work": str(plan.work),
        },
        "run": run_info,
        "protocol": {m: fm.protocol(*_shape(plan.cache, m)[1:]) for m in plan.models},
        "rows": {m: [r.to_dict() for r in rs] for m, rs in rows.items()},
        "goals": goals_data,
    }
    h.publish(NAME, data, text, save=save)
    if save:
        h.write_section(GOALS_NAME, goals_text)
    print("\n" + goals_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
