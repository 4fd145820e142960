"""Where a black-box explanation's time goes: ``cProfile`` of GEEX, GE, RISE and LIME.

One explanation per method and model, after a warm-up, with the models and budgets of
``blackbox_speed`` (the demo CNN: its first 10 digits at the paper's budgets; ResNet-18 with
random weights: one 224×224 photo at ``--resnet-budget`` queries) on ``OnnxModel(output="probs")``
at its automatic batch size. Reported per explanation: the wall time under the profiler, the share
inside ``InferenceSession.run`` (the model), and the functions that spent the most time of their
own outside it — the overhead that is left to remove.

    python -m benchmarks.profile_blackbox [--resnet-budget 256] [--skip-224] [--top 5]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import harness as h
from benchmarks.blackbox_speed import explainers, inputs_for

NAME = "profile_blackbox"
ORT_RUN = "run"  # the pybind builtin: ``onnxruntime_pybind11_state...InferenceSession.run``


def _label(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    if filename == "~":  # a builtin
        return func.strip("<>").replace("built-in method ", "").replace("method ", "")
    return f"{Path(filename).name}:{func}"


def own_times(stats: pstats.Stats) -> tuple[float, list[tuple[str, float]]]:
    """(seconds inside ONNX Runtime's ``run``, [(function, own seconds)] of everything else, largest first)."""
    model = 0.0
    rest: list[tuple[str, float]] = []
    for key, (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = _label(key)
        if key[0] == "~" and "onnxruntime" in key[2] and key[2].rstrip(">").endswith("." + ORT_RUN):
            model += tottime
        else:
            rest.append((label, tottime))
    rest.sort(key=lambda kv: kv[1], reverse=True)
    return model, rest


def profile_model(model_name: str, budget: int, top: int) -> list[dict[str, Any]]:
    from onnxplain.models.onnx import OnnxModel

    model = OnnxModel(h.onnx_model_path(model_name), output="probs", device="cpu")
    batch = model.best_batch_size()
    x = inputs_for(model_name, 10)
    rows = []
    for method, explainer in explainers(model_name, budget).items():
        print(f"{model_name}: profiling {method}", file=sys.stderr)
        explainer.explain(model, x)  # warm-up
        time.sleep(h.SETTLE_SECONDS)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        exp = explainer.explain(model, x)
        prof.disable()
        wall = time.perf_counter() - t0
        in_ort, rest = own_times(pstats.Stats(prof))
        rows.append(
            {
                "model": model_name,
                "method": method,
                "images": int(x.shape[0]),
                "n_queries": int(exp.n_queries),
                "batch": batch,
                "wall": wall,
                "in_ort": in_ort,
                "model_seconds": exp.model_seconds,
                "top": rest[:top],
                "rest_total": sum(t for _, t in rest),
            }
        )
    return rows


def markdown(res: dict[str, Any]) -> str:
    rows = []
    for r in res["rows"]:
        top = "; ".join(f"`{name}` {h.fmt_s(t)}" for name, t in r["top"])
        rows.append(
            [
                r["model"],
                r["method"],
                f"{r['images']} × {r['n_queries'] // r['images']:,}",
                r["batch"],
                h.fmt_s(r["wall"]),
                f"{h.fmt_s(r['in_ort'])} ({r['in_ort'] / r['wall']:.2f})",
                f"{h.fmt_s(r['rest_total'])} ({r['rest_total'] / r['wall']:.2f})",
                top,
            ]
        )
    table = h.md_table(
        [
            "model",
            "method",
            "images × queries",
            "batch",
            "wall (profiled)",
            "in `InferenceSession.run` (share)",
            "everything else (share)",
            "largest own times outside the model",
        ],
        rows,
    )
    notes = [
        f"Command: `{res['command']}`; {h.load_line(res['load_before'], res['load_after'])}.",
        "One profiled explanation per row after a warm-up; `cProfile` adds a little to every Python call, so "
        "the shares outside the model are upper bounds. Own time = time in the function itself, not in what it "
        "calls; builtins (numpy ufuncs, ONNX Runtime) are listed by name.",
    ]
    return (
        "### Where the time goes (cProfile)\n\n" + table + "\n\n" + "\n".join(f"- {n}" for n in notes)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resnet-budget", type=int, default=256, help="queries per ResNet-18 explanation")
    parser.add_argument("--skip-224", action="store_true", help="only the demo CNN")
    parser.add_argument("--top", type=int, default=5, help="functions listed per explanation")
    args = parser.parse_args(argv)
    load_before = h.load_average()
    rows = profile_model("demo", args.resnet_budget, args.top)
    if not args.skip_224:
        rows += profile_model("resnet18", args.resnet_budget, args.top)
    res = {
        "rows": rows,
        "command": h.command(argv),
        "load_before": load_before,
        "load_after": h.load_average(),
    }
    return h.publish(NAME, res, markdown(res))


if __name__ == "__main__":
    sys.exit(main())
