"""Black-box explainers (GEEX, GE, RISE, LIME): streaming memory, query efficiency, and GEEX vs IG.

    python -m benchmarks.blackbox_speed [--repeats 5] [--mnist PATH --n-images 100] [--skip-resnet]

1. **Memory does not grow with the budget.** Peak RSS added by one explanation of a 3×224×224
   input at 1k vs 20k queries (GEEX; RISE and LIME too), each run in a fresh subprocess
   (``harness.run_isolated``). The model is a cheap linear scorer (a ``FunctionModel``) so that
   what is measured is the explainer's own memory; goal: 20k within 10 % of 1k.
2. **Query efficiency** = ``n_queries`` × the model's best per-sample time / the explanation's
   wall time. The per-sample limit is re-measured *in every round*, around the explanation:
   a plain ``onnxruntime.InferenceSession`` runs half the forwards (in full chunks of the best
   batch size of a sweep, ``harness.best_per_sample_time``) right before the explanation and
   half right after it, so a drift of the shared machine's speed during the round weighs on
   both sides alike; we publish the median of the per-round ratios. Models: the demo MNIST CNN and a
   torchvision ResNet-18 with random weights exported to ONNX. The explainers use
   ``OnnxModel(..., output="probs")`` with its automatic batch size (also shown), and, when that
   differs from the sweep's best size, once more with the sweep's size.
   Goals: ≥ 0.90 on ResNet-18, ≥ 0.75 for GEEX on the demo CNN.
3. **GEEX vs IG by deletion AOPC** (the GEEX paper's protocol, ``onnxplain.evaluation``:
   normalised AOPC, signed channel-mean ranking, stride 10, replacement by the baseline 0,
   softmax probability of the predicted class, curves averaged before the ratio) on the demo CNN:
   GEEX with 5,000 queries against white-box IG (50 trapezoid steps, zero baseline) on the
   same images; plus a σ sweep of GEEX (AOPC and completeness gap) behind the default σ.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "blackbox_speed"
SIGMAS = (0.03, 0.05, 0.1, 0.15, 0.2, 0.3)


# -- 1. memory ------------------------------------------------------------------------------------


def memory_setup(method: str, n: int) -> Callable[[], dict[str, Any]]:
    """Child setup: a cheap 3×224×224 linear scorer and one explainer with budget ``n``."""
    from onnxplain.blackbox import GEEX, LIME, RISE
    from onnxplain.models.base import FunctionModel

    shape = (3, 224, 224)
    weights = np.random.default_rng(0).standard_normal((int(np.prod(shape)), 10)).astype(np.float32) / 400

    def scorer(z: Any) -> np.ndarray:
        return np.asarray(z, np.float32).reshape(len(z), -1) @ weights

    model = FunctionModel(scorer, shape, 10, output="probs", batch_size=64)
    explainer = {
        "geex": lambda: GEEX(n_queries=n, queries_per_call=64),
        "rise": lambda: RISE(n_masks=n, queries_per_call=64),
        "lime": lambda: LIME(n_samples=n, queries_per_call=64, segmentation="grid", n_segments=64),
    }[method]()
    x = h.natural_image(224)

    def call() -> dict[str, Any]:
        exp = explainer.explain(model, x)
        return {"n_queries": exp.n_queries}

    return call


def run_memory(budgets: tuple[int, int], methods: list[str]) -> list[dict[str, Any]]:
    rows = []
    for method in methods:
        runs = {}
        for n in budgets:
            run = h.run_isolated(f"benchmarks.{NAME}:memory_setup", {"method": method, "n": n})
            runs[n] = run
            print(f"memory {method} n={n}: +{h.fmt_bytes(run.added)} in {run.seconds:.1f} s", file=sys.stderr)
        lo, hi = (runs[n] for n in budgets)
        rows.append(
            {
                "method": method,
                "budgets": budgets,
                "added": [lo.added, hi.added],
                "peak_process": [lo.peak_process, hi.peak_process],
                "seconds": [lo.seconds, hi.seconds],
                "growth": hi.added / lo.added - 1 if lo.added else float("nan"),
                "peak_reset": lo.peak_reset and hi.peak_reset,
            }
        )
    return rows


# -- 2. query efficiency -------------------------------------------------------------------------------


def explainers(model_name: str, budget: int) -> dict[str, Any]:
    """The four explainers; on the demo CNN at the paper's budgets, on ResNet-18 at ``budget``."""
    from onnxplain.blackbox import GE, GEEX, LIME, RISE

    if model_name == "demo":
        return {
            "GEEX": GEEX(n_queries=5000),
            "GE": GE(n_queries=5000),
            "RISE": RISE(n_masks=4000),
            "LIME": LIME(n_samples=1000),
        }
    return {
        "GEEX": GEEX(n_queries=budget),
        "GE": GE(n_queries=budget),
        "RISE": RISE(n_masks=budget),
        "LIME": LIME(n_samples=budget),
    }


def inputs_for(model_name: str, n_images: int) -> np.ndarray:
    if model_name == "demo":
        from onnxplain.demo import load_demo_digits

        return load_demo_digits()[0][:n_images]
    return h.natural_image(224)[None]


def run_efficiency(model_name: str, repeats: int, n_images: int, budget: int = 0) -> dict[str, Any]:
    from onnxplain.models.onnx import OnnxModel

    path = h.onnx_model_path(model_name)
    shape = h.input_shape_of(model_name)
    best = h.best_per_sample_time(path, shape)
    session = h.plain_session(path)
    feed_name = session.get_inputs()[0].name
    chunk = np.random.default_rng(0).random((best.batch_size, *shape), dtype=np.float32)
    x = inputs_for(model_name, n_images)
    auto = OnnxModel(path, output="probs", device="cpu")
    models = {"auto": auto}
    auto_time = best.table.get(auto.best_batch_size(), float("inf"))
    if auto.best_batch_size() != best.batch_size and auto_time > 1.1 * best.per_sample:
        # The automatic size is measurably slower than the sweep's best: show both.
        models["sweep"] = OnnxModel(path, output="probs", device="cpu", batch_size=best.batch_size)
    print(
        f"{model_name}: best {best.per_sample * 1e6:.0f} µs/sample at batch {best.batch_size}; "
        f"OnnxModel auto batch {auto.best_batch_size()}",
        file=sys.stderr,
    )

    def plain(n: int) -> tuple[float, int]:
        """(seconds, samples) of the plain session for about ``n`` forwards, in full chunks."""
        time.sleep(h.SETTLE_SECONDS)
        calls = max(1, round(n / best.batch_size))
        t0 = time.perf_counter()
        for _ in range(calls):
            session.run(None, {feed_name: chunk})
        return time.perf_counter() - t0, calls * best.batch_size

    rows = []
    for method, explainer in explainers(model_name, budget).items():
        for label, model in models.items():
            n_queries = explainer.explain(model, x).n_queries  # warm-up (and the budget)
            limit_times: list[float] = []
            walls: list[float] = []
            fractions: list[float] = []
            for _ in range(repeats):  # limit (first half), explanation, limit (second half)
                before, n_before = plain(n_queries / 2)
                time.sleep(h.SETTLE_SECONDS)
                t0 = time.perf_counter()
                exp = explainer.explain(model, x)
                walls.append(time.perf_counter() - t0)
                fractions.append(exp.model_seconds / exp.seconds)
                after, n_after = plain(n_queries / 2)
                limit_times.append(n_queries * (before + after) / (n_before + n_after))
            per_round = [a / b for a, b in zip(limit_times, walls, strict=True)]
            row = {
                "model": model_name,
                "method": method,
                "batch": f"{label} ({model.best_batch_size()})",
                "n_images": len(x),
                "n_queries": n_queries,
                "wall_median": statistics.median(walls),
                "limit_median": statistics.median(limit_times),
                "efficiency": statistics.median(per_round),
                "efficiency_rounds": per_round,
                "efficiency_static": n_queries * best.per_sample / statistics.median(walls),
                "model_fraction": statistics.median(fractions),
            }
            rows.append(row)
            print(
                f"  {method} [{label}]: eff {row['efficiency']:.3f} (rounds {np.round(per_round, 3).tolist()}), "
                f"wall {row['wall_median']:.2f} s",
                file=sys.stderr,
            )
    return {"best": best.to_dict(), "rows": rows}


# -- 3. GEEX vs IG (deletion AOPC) --------------------------------------------------------------------


def load_digits(mnist: Path | None, n_images: int) -> tuple[np.ndarray, str]:
    if mnist is None:
        from onnxplain.demo import load_demo_digits

        x = load_demo_digits()[0][:n_images]
        return x, f"the {len(x)} digits shipped with the demo"
    with np.load(mnist) as data:
        idx = data["heldout_idx"][:n_images]
        x = data["x"][idx].astype(np.float32)[:, None] / 255.0
    return x, f"the first {len(x)} held-out MNIST test digits ({mnist.name})"


# x̂ and the deletion replacement: black pixels, and the GEEX paper's "0", which is zero of the
# Normalize(0.1307, 0.3081) input space, i.e. pixel value 0.1307 for our [0,1]-pixel model.
BASELINES = {"black (0)": 0.0, "paper (0.1307)": 0.1307}


def run_aopc(
    mnist: Path | None, n_images: int, queries: int, *, sweep: bool = False, seeds: tuple[int, ...] = (0, 1)
) -> dict[str, Any]:
    """AOPC and completeness of IG and GEEX under both baseline conventions.

    Default: σ = 0.1 at ``queries``, two seeds. ``sweep=True`` adds σ ∈ SIGMAS and 2×/4× budgets.
    """
    from onnxplain.blackbox import GEEX
    from onnxplain.demo import load_demo_model, load_demo_torch
    from onnxplain.evaluation.aopc import aopc_deletion
    from onnxplain.gradients.integrated import IntegratedGradients

    x, source = load_digits(mnist, n_images)
    model = load_demo_model(output="probs", device="cpu", batch_size=256)
    rows: list[dict[str, Any]] = []
    cases = [(0.1, queries, seeds)]
    if sweep:
        cases = [(sigma, queries, seeds) for sigma in SIGMAS] + [(0.1, n, seeds[:1]) for n in (2 * queries, 4 * queries)]
    for name, base in BASELINES.items():

        def aopc(exp: Any, base: float = base) -> float:
            return aopc_deletion(
                model, x, exp.attributions, target=exp.target, stride=10, replacement="baseline", baseline=base
            ).score

        ig = IntegratedGradients(steps=50, baseline=base, output="probs").explain(load_demo_torch(), x)
        rows.append({"method": "IG (white-box, 50 steps)", "baseline": name, "sigma": None, "queries": None,
                     "aopc": [aopc(ig)], "rel_gap": [_rel_gap(ig)], "seconds": [ig.seconds]})
        print(f"  [{name}] IG: AOPC {rows[-1]['aopc'][0]:.4f}", file=sys.stderr)
        for sigma, n, case_seeds in cases:
            row: dict[str, Any] = {"method": "GEEX", "baseline": name, "sigma": sigma, "queries": n,
                                   "aopc": [], "rel_gap": [], "seconds": [], "seeds": list(case_seeds)}
            for seed in case_seeds:
                exp = GEEX(n_queries=n, sigma=sigma, baseline=base, seed=seed).explain(model, x, target=ig.target)
                row["aopc"].append(aopc(exp))
                row["rel_gap"].append(_rel_gap(exp))
                row["seconds"].append(exp.seconds)
            rows.append(row)
            print(f"  [{name}] GEEX σ={sigma} n={n}: AOPC {row['aopc']}, |gap| {row['rel_gap']}", file=sys.stderr)
    return {"source": source, "rows": rows, "queries": queries}


def _rel_gap(exp: Any) -> float:
    """Mean over images of |Σξ − (f(x) − f(x̂))| / |f(x) − f(x̂)|, images with |Δf| > 0.5 only."""
    diff = np.asarray(exp.score) - np.asarray(exp.baseline_score)
    keep = np.abs(diff) > 0.5
    return float(np.mean(np.abs(np.asarray(exp.completeness_gap)[keep]) / np.abs(diff[keep])))


# -- report ------------------------------------------------------------------------------------------


def markdown(results: dict[str, Any], cmd: str, load: str) -> str:
    out = ["## Black-box explainers", "", f"Command: `{cmd}`", ""]
    out.append(
        f"Load while this ran: {load}. Absolute times on a shared machine are noisy; the "
        "efficiencies are per-round ratios measured side by side."
    )
    out.append("")
    if results.get("memory"):
        out += [
            "**Memory vs budget** (3×224×224 input, cheap linear scorer, chunks of 64 queries, fresh "
            "process per run; peak RSS added by the call):",
            "",
            h.md_table(
                ["method", "budgets", "added peak RSS", "growth", "call time"],
                [
                    [
                        r["method"].upper(),
                        " vs ".join(f"{n:,}" for n in r["budgets"]),
                        " vs ".join(h.fmt_bytes(a) for a in r["added"]),
                        f"{r['growth'] * 100:+.1f} %",
                        " vs ".join(h.fmt_s(s) for s in r["seconds"]),
                    ]
                    for r in results["memory"]
                ],
            ),
            "",
        ]
    for model_name, eff in results.get("efficiency", {}).items():
        best = eff["best"]
        out += [
            f"**Query efficiency, {model_name}** (plain ORT best {best['per_sample'] * 1e6:.0f} µs/sample at "
            f"batch {best['batch_size']} when measured first; efficiency = plain-session time for the same "
            "number of forwards, measured half before and half after the explanation in each round, "
            "÷ the explanation's wall time; median over rounds):",
            "",
            h.md_table(
                ["method", "images", "n_queries", "OnnxModel batch", "wall (median)", "efficiency",
                 "rounds", "model_seconds/seconds"],
                [
                    [
                        r["method"],
                        r["n_images"],
                        f"{r['n_queries']:,}",
                        r["batch"],
                        h.fmt_s(r["wall_median"]),
                        f"**{r['efficiency']:.2f}**",
                        ", ".join(f"{v:.2f}" for v in r["efficiency_rounds"]),
                        f"{r['model_fraction']:.2f}",
                    ]
                    for r in eff["rows"]
                ],
            ),
            "",
        ]
    if results.get("aopc"):
        a = results["aopc"]

        def per_seed(values: list[float], digits: int) -> str:
            mean = f"{np.mean(values):.{digits}f}"
            return mean if len(values) == 1 else f"{mean} ({', '.join(f'{v:.{digits}f}' for v in values)})"

        out += [
            f"**GEEX vs IG, deletion AOPC** on the demo CNN ({a['source']}; GEEX paper protocol: "
            "stride 10, replacement = the baseline value, softmax probability of IG's target, higher "
            "is better), under two baseline conventions: black pixels, and the paper's \"0\", which is "
            "zero of the Normalize(0.1307, 0.3081) space = pixel 0.1307 (x̂ and the replacement alike). "
            "Relative completeness gap = mean over images with |Δf| > 0.5 of |Σξ − (f(x) − f(x̂))| / |Δf|. "
            "GEEX values: mean over seeds (each seed in brackets).",
            "",
            h.md_table(
                ["baseline", "method", "σ", "queries", "AOPC", "rel. completeness gap", "seconds (each)"],
                [
                    [
                        r["baseline"],
                        r["method"],
                        "—" if r["sigma"] is None else r["sigma"],
                        "—" if r["queries"] is None else f"{r['queries']:,}",
                        per_seed(r["aopc"], 4),
                        per_seed(r["rel_gap"], 3),
                        f"{np.mean(r['seconds']):.1f}",
                    ]
                    for r in a["rows"]
                ],
            ),
            "",
        ]
        for name in BASELINES:
            rows = [r for r in a["rows"] if r["baseline"] == name]
            ig = rows[0]["aopc"][0]
            default = next(r for r in rows[1:] if r["sigma"] == 0.1 and r["queries"] == a["queries"])
            verdict = "at least as high as" if min(default["aopc"]) >= ig else "below"
            out += [
                f"Reading ({name}): GEEX at the default σ = 0.1 with {a['queries']:,} queries scores "
                f"{np.mean(default['aopc']):.4f} (seeds {min(default['aopc']):.4f}–{max(default['aopc']):.4f}), "
                f"{verdict} IG's {ig:.4f}.",
                "",
            ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds per efficiency case (demo CNN)")
    parser.add_argument("--repeats-resnet", type=int, default=3, help="rounds on ResNet-18")
    parser.add_argument("--n-images", type=int, default=10, help="digits for the demo-CNN parts")
    parser.add_argument("--mnist", type=Path, default=None, help="mnist_test.npz for the AOPC part")
    parser.add_argument("--aopc-images", type=int, default=100, help="held-out digits with --mnist")
    parser.add_argument("--memory-budgets", type=int, nargs=2, default=(1000, 20000))
    parser.add_argument("--resnet-budget", type=int, default=256, help="queries per ResNet-18 explanation")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument("--skip-aopc", action="store_true")
    parser.add_argument("--sigma-sweep", action="store_true", help="AOPC over σ and 2×/4× budgets (slow)")
    args = parser.parse_args(argv)

    load_before = h.load_average()
    results: dict[str, Any] = {}
    if not args.skip_memory:
        results["memory"] = run_memory(tuple(args.memory_budgets), ["geex", "rise", "lime"])
    results["efficiency"] = {"demo CNN (1×28×28)": run_efficiency("demo", args.repeats, args.n_images)}
    if not args.skip_resnet:
        results["efficiency"]["ResNet-18, random weights (3×224×224)"] = run_efficiency(
            "resnet18", args.repeats_resnet, 1, args.resnet_budget
        )
    if not args.skip_aopc:
        n = args.aopc_images if args.mnist else args.n_images
        results["aopc"] = run_aopc(args.mnist, n, 5000, sweep=args.sigma_sweep)
    load = h.load_line(load_before, h.load_average())
    cmd = h.command()
    h.save_results(NAME, results)
    text = markdown(results, cmd, load)
    print(text)
    h.write_section(NAME, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
