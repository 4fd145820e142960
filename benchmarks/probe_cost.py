"""The cold-start tax of ``batch_size="auto"``: the first probe vs a 1,000-query GEEX explanation.

Issue 16.5: a process that meets a model for the first time measures its best batch size
(:mod:`onnxplain.models.autobatch`) before the first explanation; that probe must cost at most
10 % of a 1,000-query explanation on a 224×224 model, and a second process on the same model and
machine must not probe at all (the size is read from the on-disk cache).

Every repetition is a fresh subprocess (``harness.run_isolated``) with an empty cache directory
of its own (``$ONNXPLAIN_CACHE_DIR``), so each one pays the real first probe: session already
open, then ``model.best_batch_size()`` (the probe) and ``GEEX(n_queries).explain`` on a natural
224×224 photo at the picked size, then a second ``OnnxModel`` on the same file (the in-process
memory cache emptied) whose ``best_batch_size()`` must come from the disk. We report medians of
the probe's seconds, the explanation's seconds, their ratio (goal ≤ 0.10), the picked sizes and
the cache hit's seconds, next to the model's own limit for the explanation (the best per-sample
time of a plain ONNX Runtime session × queries).

    python -m benchmarks.probe_cost [--models resnet18 small224] [--queries 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import harness as h

NAME = "probe_cost"
GOAL = 0.10


def setup(model_name: str, n_queries: int, seed: int = 0, device: str = "cpu") -> Callable[[], dict[str, Any]]:
    """Child-process setup: an empty cache, the model's session, the photo; the call probes and explains."""
    from onnxplain.blackbox import GEEX
    from onnxplain.models import OnnxModel, autobatch

    os.environ["ONNXPLAIN_CACHE_DIR"] = tempfile.mkdtemp(prefix="onnxplain-probe-")
    path = h.onnx_model_path(model_name)
    model = OnnxModel(path, output="probs", device=device)
    x = h.natural_image(224)
    explainer = GEEX(n_queries=n_queries, seed=seed)

    def call() -> dict[str, Any]:
        t0 = time.perf_counter()
        size = model.best_batch_size()
        probe = time.perf_counter() - t0
        t0 = time.perf_counter()
        exp = explainer.explain(model, x)
        explain = time.perf_counter() - t0
        autobatch.clear_memory()  # a new process would start without it
        again = OnnxModel(path, output="probs", device=device)
        t0 = time.perf_counter()
        cached = again.best_batch_size()
        hit = time.perf_counter() - t0
        return {
            "probe_seconds": probe,
            "batch_size": size,
            "explain_seconds": explain,
            "explain_model_seconds": exp.model_seconds,
            "n_queries": exp.n_queries,
            "cache_hit_seconds": hit,
            "cache_hit_batch_size": cached,
            "cache_hit_source": again.batch_size_source(),
            "probe_source": model.batch_size_source(),
        }

    return call


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = []
    for model_name in args.models:
        h.onnx_model_path(model_name)  # export once here; children only read it
        runs = []
        for r in range(args.repeats):
            res = h.run_isolated(
                "benchmarks.probe_cost:setup",
                {"model_name": model_name, "n_queries": args.queries, "device": args.device},
            )
            runs.append(res.result)
            print(
                f"  [{r + 1}/{args.repeats}] {model_name}: probe {res.result['probe_seconds']:.2f} s "
                f"(size {res.result['batch_size']}), explain {res.result['explain_seconds']:.2f} s, "
                f"cache hit {res.result['cache_hit_seconds'] * 1e3:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
        best = h.best_per_sample_time(
            h.onnx_model_path(model_name), h.input_shape_of(model_name), seconds_per_size=0.3, device=args.device
        )

        def med(key: str, rows: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(row[key] for row in rows))

        ratios = [row["probe_seconds"] / row["explain_seconds"] for row in runs]
        out.append(
            {
                "model": model_name,
                "probe_seconds": med("probe_seconds"),
                "explain_seconds": med("explain_seconds"),
                "ratio": float(statistics.median(ratios)),
                "batch_sizes": [row["batch_size"] for row in runs],
                "cache_hit_seconds": med("cache_hit_seconds"),
                "cache_hits": all(row["cache_hit_batch_size"] == row["batch_size"] for row in runs)
                and all("cache" in row["cache_hit_source"] for row in runs),
                "limit_seconds": best.limit(runs[0]["n_queries"]),
                "best_time": best.to_dict(),
                "runs": runs,
            }
        )
    return {"models": out, "queries": args.queries, "repeats": args.repeats}


def markdown(res: dict[str, Any]) -> str:
    rows = []
    for m in res["models"]:
        verdict = "met" if m["ratio"] <= GOAL else "**not met**"
        rows.append(
            [
                m["model"],
                h.fmt_s(m["probe_seconds"]),
                h.fmt_s(m["explain_seconds"]),
                f"**{m['ratio']:.3f}** ({verdict})",
                ", ".join(map(str, m["batch_sizes"])),
                h.fmt_s(m["limit_seconds"]) + f" (plain ORT, best at {m['best_time']['batch_size']})",
                h.fmt_s(m["cache_hit_seconds"]) + ("" if m["cache_hits"] else " — **missed**"),
            ]
        )
    table = h.md_table(
        [
            "model",
            "first probe (median)",
            f"GEEX {res['queries']} queries at the picked size",
            f"probe / explanation (goal ≤ {GOAL})",
            "picked sizes",
            "model limit for the explanation",
            "second process: cache read",
        ],
        rows,
    )
    return "\n".join(
        [
            f"### Cold start: the batch-size probe vs a {res['queries']}-query explanation",
            "",
            table,
            "",
            f"- Command: `{res['command']}`; {res['repeats']} fresh subprocesses per model, each with an empty "
            f"cache directory; medians; {h.load_line(res.get('load_before'), res.get('load_after'))}.",
            "- The probe: `OnnxModel(batch_size='auto').best_batch_size()` right after the session opened "
            "(sizes 1 and 8, then the knee of the fitted per-call cost and its neighbours, under a budget of "
            "50 queries' time; `onnxplain.models.autobatch`). The cache read: a second `OnnxModel` on the same "
            "file with the in-process memory emptied, reading `$ONNXPLAIN_CACHE_DIR/batch_sizes.json`.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "small224"], choices=["resnet18", "small224"])
    parser.add_argument("--queries", type=int, default=1000, help="GEEX budget of the explanation (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per model (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:<i>")
    args = parser.parse_args(argv)
    load_before = h.load_average()
    res = run(args)
    res.update({"command": h.command(argv), "load_before": load_before, "load_after": h.load_average()})
    return h.publish(NAME, res, markdown(res))


if __name__ == "__main__":
    sys.exit(main())
