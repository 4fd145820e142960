"""GEEX scaling: wall time and peak RSS at 1k, 5k and 20k queries (time linear, memory flat).

Each (model, n_queries) run is a fresh subprocess (``harness.run_isolated``): the setup loads the
ONNX model and measures its batch size; the timed call is one ``GEEX(n_queries).explain``. Runs
are interleaved over the query counts (ascending, then descending, …) and summarised by medians.

- **Time linear**: a least-squares fit t = a + b·n over all runs (fixed cost a, cost per query b,
  R²), and the test: the wall time per query at 20k is at most 1.25× the one at 1k (no
  super-linear growth). The marginal cost per query (5k→20k over 1k→5k) is shown too; it
  differences two noisy medians, so on a shared machine it is the less stable of the two.
- **Memory flat**: peak RSS added by the explanation (peak during the call − RSS before it) at
  20k vs 1k; goal: less than 10 % apart (issue 3's streaming requirement).

Models: the small 3×224×224 CNN of the harness (per-query work is large, so memory would show
any materialisation) and the demo MNIST CNN (1×28×28, overhead-bound).

    python -m benchmarks.geex_scaling [--queries 1000 5000 20000] [--models small224 demo] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "geex_scaling"


def setup(
    model_name: str, n_queries: int, seed: int = 0, device: str = "cpu", rehearse: bool = False
) -> Callable[[], dict[str, Any]]:
    """Child-process setup: model, explicand, explainer; the call runs one explanation."""
    from onnxplain.blackbox import GEEX

    model = h.query_model(h.onnx_model_path(model_name), device, rehearse)
    batch_size = model.best_batch_size()
    x = h.demo_digit(0) if model_name == "demo" else h.natural_image(224)
    explainer = GEEX(n_queries=n_queries, seed=seed, array_backend=h.backend(rehearse))

    def call() -> dict[str, Any]:
        exp = explainer.explain(model, x)
        return {"n_queries": exp.n_queries, "model_seconds": exp.model_seconds, "batch_size": batch_size}

    return call


def fit_line(n: np.ndarray, t: np.ndarray) -> tuple[float, float, float]:
    """Least squares t = a + b·n: returns (a, b, R²)."""
    design = np.stack([np.ones_like(n), n], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, t, rcond=None)
    pred = a + b * n
    ss_res = float(((t - pred) ** 2).sum())
    ss_tot = float(((t - t.mean()) ** 2).sum())
    return float(a), float(b), 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = []
    for model_name in args.models:
        h.onnx_model_path(model_name)  # export once here; children only read it
        repeats = args.repeats if model_name != "demo" else max(args.repeats, 5)
        runs: dict[int, list[h.IsolatedRun]] = {n: [] for n in args.queries}
        for r in range(repeats):
            for n in args.queries if r % 2 == 0 else args.queries[::-1]:
                res = h.run_isolated(
                    "benchmarks.geex_scaling:setup",
                    {"model_name": model_name, "n_queries": n, "device": args.device, "rehearse": args.rehearse_cuda_path},
                )
                runs[n].append(res)
                print(
                    f"  [{r + 1}/{repeats}] {model_name} n={n}: {res.seconds:.2f} s, +{h.fmt_bytes(res.added)} "
                    f"(peak {h.fmt_bytes(res.peak_process)})",
                    file=sys.stderr,
                    flush=True,
                )
        ns = np.array([n for n in args.queries for _ in runs[n]], np.float64)
        ts = np.array([i.seconds for n in args.queries for i in runs[n]], np.float64)
        a, b, r2 = fit_line(ns, ts)
        med = {n: float(statistics.median(i.seconds for i in runs[n])) for n in args.queries}
        added = {n: float(statistics.median(i.added for i in runs[n])) for n in args.queries}
        peak = {n: float(statistics.median(i.peak_process for i in runs[n])) for n in args.queries}
        lo, mid, hi = args.queries[0], args.queries[len(args.queries) // 2], args.queries[-1]
        slope = (med[mid] - med[lo]) / (mid - lo) if mid != lo else float("nan")
        slope_hi = (med[hi] - med[mid]) / (hi - mid) if hi != mid else float("nan")
        predicted_hi = med[lo] + slope * (hi - lo)
        best = h.best_per_sample_time(
            h.onnx_model_path(model_name), h.input_shape_of(model_name), seconds_per_size=0.3, device=args.device
        )
        out.append(
            {
                "model": model_name,
                "input_shape": list(h.input_shape_of(model_name)),
                "repeats": repeats,
                "batch_size": runs[lo][0].result["batch_size"],
                "median_seconds": med,
                "added_rss": added,
                "peak_rss": peak,
                "model_seconds": {n: float(statistics.median(i.result["model_seconds"] for i in runs[n])) for n in runs},
                "fit": {"fixed_seconds": a, "seconds_per_query": b, "r2": r2},
                "largest_vs_line": med[hi] / predicted_hi if predicted_hi > 0 else float("nan"),
                "marginal_ratio": slope_hi / slope if slope > 0 else float("nan"),
                "memory_change": (added[hi] - added[lo]) / added[lo] if added[lo] > 0 else float("nan"),
                "peak_change": (peak[hi] - peak[lo]) / peak[lo],
                "best_time": best.to_dict(),
                "runs": {n: [i.to_dict() for i in runs[n]] for n in runs},
            }
        )
    return {"models": out, "queries": args.queries}


def markdown(res: dict[str, Any]) -> str:
    rows = []
    for m in res["models"]:
        for n in res["queries"]:
            rows.append(
                [
                    f"{m['model']} {'×'.join(map(str, m['input_shape']))}",
                    f"{n:,}",
                    h.fmt_s(m["median_seconds"][n]),
                    h.fmt_s(m["model_seconds"][n]),
                    h.fmt_s(m["median_seconds"][n] / n),
                    h.fmt_bytes(m["added_rss"][n]),
                    h.fmt_bytes(m["peak_rss"][n]),
                ]
            )
    table = h.md_table(
        ["model", "queries", "wall time (median)", "of which model", "per query", "RSS added", "process peak RSS"], rows
    )
    verdicts = []
    for m in res["models"]:
        f = m["fit"]
        q_lo, q_hi = res["queries"][0], res["queries"][-1]
        per_query_ratio = (m["median_seconds"][q_hi] / q_hi) / (m["median_seconds"][q_lo] / q_lo)
        linear = per_query_ratio <= 1.25  # no super-linear growth: cost per query at 20k ≤ 1.25× at 1k
        flat = abs(m["memory_change"]) < 0.10 or (m["added_rss"][res["queries"][-1]] - m["added_rss"][res["queries"][0]]) < 8 * 2**20
        verdicts.append(
            f"{m['model']}: t ≈ {h.fmt_s(f['fixed_seconds'])} + n × {h.fmt_s(f['seconds_per_query'])} "
            f"(R² {f['r2']:.4f} over all runs; wall time per query at {q_hi:,} / at {q_lo:,}: "
            f"{per_query_ratio:.2f}; marginal cost per query of the last step / the previous one "
            f"{m['marginal_ratio']:.2f}; plain-ORT best {h.fmt_s(m['best_time']['per_sample'])}/sample) — "
            f"time linear (per-query ratio ≤ 1.25): "
            f"{'yes' if linear else 'NO'}; RSS added {res['queries'][-1]:,} vs {res['queries'][0]:,}: "
            f"{m['memory_change']:+.1%} (process peak {m['peak_change']:+.1%}) — memory flat: {'yes' if flat else 'NO'}; "
            f"{m['repeats']} repetitions, batch size {m['batch_size']}."
        )
    notes = [
        f"Command: `{res['command']}`"
        + (f" (summary re-rendered from its results by `{res['rerendered_by']}`)" if res.get("rerendered_by") else "")
        + "; every run a fresh subprocess, interleaved over the query counts; medians; "
        f"{h.load_line(res['load_before'], res['load_after'])}.",
        "`GEEX(n_queries=n)` defaults (σ = 0.1, zero baseline, mirrored pairs, stratified α) on `OnnxModel(output='probs')`; "
        "explicand: demo digit 0 / scikit-image `chelsea` at 224×224. RSS added = peak during the call − RSS before it.",
        *verdicts,
    ]
    return "### GEEX: time and memory vs the number of queries\n\n" + table + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--models", nargs="+", default=["small224", "demo"], choices=["small224", "demo", "resnet18"])
    parser.add_argument(
        "--repeats", type=int, default=2, help="per query count (default 2; the demo CNN gets at least 5)"
    )
    parser.add_argument("--from-json", type=Path, help="re-render the README block from a results file; no runs")
    h.add_device_options(parser)
    args = parser.parse_args(argv)
    args.queries = sorted(args.queries)
    if args.from_json is not None:
        res = json.loads(args.from_json.read_text())
        for m in res["models"]:
            for key in ("median_seconds", "added_rss", "peak_rss", "model_seconds"):
                m[key] = {int(k): v for k, v in m[key].items()}
        res["rerendered_by"] = h.command(argv)
        md = markdown(res)
        h.write_section(NAME, md)
        print(md)
        return 0
    load_before = h.load_average()
    res = run(args)
    res.update({"command": h.command(argv), "load_before": load_before, "load_after": h.load_average()})
    return h.publish(NAME, res, markdown(res))


if __name__ == "__main__":
    sys.exit(main())
