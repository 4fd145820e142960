"""Sobol and HSIC attribution: wall time and peak RSS against the query budget.

Each (method, model, budget) run is a fresh subprocess (``harness.run_isolated``) that loads the
ONNX model and then times one ``explain`` on one explicand; runs are interleaved over the budgets
and summarised by medians.

- **Sobol** (g = 8): N = 16, 64, 256 → 1,040, 4,160, 16,640 queries. Streaming keeps f(A) and a
  (d,) sum per explicand: the RSS the call adds should not grow with N (goal: the largest budget
  within 10 % or 8 MiB of the smallest).
- **HSIC** (g = 7): n = 500, 1,500, 5,000. Queries stream the same way, but scoring needs the
  n(n−1)/2 pairwise output differences for the bandwidth (4·n² bytes: 1 MB, 9 MB, 100 MB) and
  the n×d design (float64, twice): the table lists that expected term next to the measurement.

    python -m benchmarks.sobol_hsic_scaling [--models small224 demo] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import harness as h

NAME = "sobol_hsic_scaling"
BUDGETS: dict[str, list[int]] = {"sobol": [16 * 65, 64 * 65, 256 * 65], "hsic": [500, 1500, 5000]}


def setup(
    method: str, model_name: str, n_queries: int, device: str = "cpu", rehearse: bool = False
) -> Callable[[], dict[str, Any]]:
    """Child-process setup: model, explicand, explainer; the call runs one explanation."""
    from scipy.stats import qmc  # noqa: F401  (imported by the first design: keep it out of the timed call)

    from onnxplain.blackbox import HSIC, Sobol

    model = h.query_model(h.onnx_model_path(model_name), device, rehearse)
    model.best_batch_size()
    x = h.demo_digit(0) if model_name == "demo" else h.natural_image(224)
    cls = Sobol if method == "sobol" else HSIC
    explainer = cls(n_queries, array_backend=h.backend(rehearse))

    def call() -> dict[str, Any]:
        exp = explainer.explain(model, x)
        return {"n_queries": exp.n_queries, "model_seconds": exp.model_seconds}

    return call


def expected_hsic_bytes(n: int, d: int = 49) -> int:
    """HSIC's scoring memory: n(n−1)/2 float64 differences + two n×d float64 arrays."""
    return n * (n - 1) // 2 * 8 + 2 * n * d * 8


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = []
    for model_name in args.models:
        h.onnx_model_path(model_name)
        for method in args.methods:
            budgets = BUDGETS[method]
            runs: dict[int, list[h.IsolatedRun]] = {n: [] for n in budgets}
            for r in range(args.repeats):
                for n in budgets if r % 2 == 0 else budgets[::-1]:
                    kwargs = {
                        "method": method,
                        "model_name": model_name,
                        "n_queries": n,
                        "device": args.device,
                    }
                    res = h.run_isolated(
                        "benchmarks.sobol_hsic_scaling:setup", kwargs | {"rehearse": args.rehearse_cuda_path}
                    )
                    runs[n].append(res)
                    print(
                        f"  [{r + 1}/{args.repeats}] {method} {model_name} n={n}: {res.seconds:.2f} s, "
                        f"+{h.fmt_bytes(res.added)}",
                        file=sys.stderr,
                        flush=True,
                    )
            out.append(
                {
                    "method": method,
                    "model": model_name,
                    "repeats": args.repeats,
                    "forwards": {n: runs[n][0].result["n_queries"] for n in budgets},
                    "median_seconds": {n: statistics.median(i.seconds for i in runs[n]) for n in budgets},
                    "model_seconds": {
                        n: statistics.median(i.result["model_seconds"] for i in runs[n]) for n in budgets
                    },
                    "added_rss": {n: statistics.median(i.added for i in runs[n]) for n in budgets},
                    "runs": {n: [i.to_dict() for i in runs[n]] for n in budgets},
                }
            )
    return {"results": out}


def markdown(res: dict[str, Any]) -> str:
    rows, verdicts = [], []
    for m in res["results"]:
        budgets = list(m["median_seconds"])
        for n in budgets:
            t = m["median_seconds"][n]
            extra = h.fmt_bytes(expected_hsic_bytes(n)) if m["method"] == "hsic" else "—"
            rows.append(
                [
                    m["method"],
                    m["model"],
                    f"{m['forwards'][n]:,}",
                    h.fmt_s(t),
                    h.fmt_s(m["model_seconds"][n]),
                    h.fmt_s(t / m["forwards"][n]),
                    h.fmt_bytes(m["added_rss"][n]),
                    extra,
                ]
            )
        lo, hi = m["added_rss"][budgets[0]], m["added_rss"][budgets[-1]]
        if m["method"] == "sobol":
            flat = hi - lo < 8 * 2**20 or abs(hi - lo) < 0.1 * lo
            verdicts.append(
                f"sobol on {m['model']}: RSS added {h.fmt_bytes(hi)} at the largest budget vs "
                f"{h.fmt_bytes(lo)} at the smallest — memory flat: {'yes' if flat else 'NO'}."
            )
    table = h.md_table(
        [
            "method",
            "model",
            "forwards",
            "wall (median)",
            "of which model",
            "per forward",
            "RSS added",
            "HSIC scoring term",
        ],
        rows,
    )
    notes = [
        f"Command: `{res['command']}`; each run a fresh subprocess, interleaved over budgets; medians; "
        f"{h.load_line(res['load_before'], res['load_after'])}.",
        "Defaults otherwise (Sobol g = 8, HSIC g = 7 with LHS and the pairwise bandwidth, inpainting on 0); "
        "explicand: demo digit 0 / scikit-image `chelsea` at 224×224.",
        *verdicts,
    ]
    return (
        "### Sobol and HSIC: time and memory vs the budget\n\n"
        + table
        + "\n\n"
        + "\n".join(f"- {n}" for n in notes)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["small224", "demo"], choices=["small224", "demo", "resnet18"]
    )
    parser.add_argument("--methods", nargs="+", default=["sobol", "hsic"], choices=["sobol", "hsic"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-save", action="store_true", help="print only (smoke runs)")
    h.add_device_options(parser)
    args = parser.parse_args(argv)
    load_before = h.load_average()
    res = run(args)
    res.update({"command": h.command(argv), "load_before": load_before, "load_after": h.load_average()})
    return h.publish(NAME, res, markdown(res), save=not args.no_save)


if __name__ == "__main__":
    sys.exit(main())
