"""RISE: peak memory and time of onnxplain vs the reference code (eclique/RISE, MIT).

The reference is never copied here: pass a local clone with ``--rise-reference PATH``; its
``explanations.RISE`` is imported from there at run time (skipped without a path). It
hard-codes ``.cuda()``; to run its ``generate_masks``/``forward`` on CPU, the benchmark process
turns ``torch.Tensor.cuda`` into a no-op before calling it (the only change: its code runs as
written, on the CPU). Its ``generate_masks`` saves ``masks.npy`` by default; we hand it an open
``/dev/null`` as ``savepath`` so nothing lands on disk (the serialisation still runs).

What is compared, for N = 4,000 and 8,000 masks on one 3×224×224 image (grid s = 8, p1 = 0.1,
the reference's Saliency notebook): the reference builds the N×H×W masks (float64, then float32)
and the N×3×H×W masked stack before running the model in chunks of ``gpu_batch=100``; ours
streams mask blocks. The model is the small 3×224×224 CNN of the harness (torch for the
reference, its ONNX export for us), so the explainers' own work is what is measured; with a big
model both are bound by the same forwards. Every run is a fresh subprocess: its wall time (mask
generation included, as both need masks to explain) and its peak RSS, reported in total and as
the memory the explanation added on top of the process after setup.

    python -m benchmarks.peers_rise --rise-reference /tmp/rise-ref [--repeats 2] [--masks 4000 8000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "peers_rise"
GRID = 8
P1 = 0.1
MODEL = "small224"


def setup_reference(path: str, n_masks: int, seed: int = 0, device: str = "cpu") -> Callable[[], dict[str, Any]]:
    """Child-process setup: import the reference from ``path``, patch ``.cuda()``, load the model.

    On ``device="cuda"`` nothing is patched: the reference runs as written.
    """
    import torch

    if not device.startswith("cuda"):
        torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]  # CPU run
    sys.path.insert(0, str(Path(path).resolve()))
    import explanations  # type: ignore[import-not-found]

    net = torch.nn.Sequential(h.torch_model(MODEL), torch.nn.Softmax(dim=1)).eval().to(device)
    for p in net.parameters():
        p.requires_grad = False  # as the reference notebooks do
    img = torch.from_numpy(h.natural_image(224)[None].copy()).to(device)
    explainer = explanations.RISE(net, (224, 224), gpu_batch=100)
    np.random.seed(seed)  # the reference draws masks from numpy's global RNG

    def call() -> dict[str, Any]:
        t0 = time.perf_counter()
        with open("/dev/null", "wb") as sink:
            explainer.generate_masks(n_masks, GRID, P1, savepath=sink)
        t1 = time.perf_counter()
        sal = explainer(img)
        t2 = time.perf_counter()
        return {"generate_seconds": t1 - t0, "forward_seconds": t2 - t1, "shape": list(sal.shape)}

    return call


def setup_ours(
    n_masks: int, seed: int = 0, device: str = "cpu", rehearse: bool = False
) -> Callable[[], dict[str, Any]]:
    """Child-process setup: the ONNX model (batch size measured here, not in the timed call)."""
    from onnxplain.blackbox import RISE

    model = h.query_model(h.onnx_model_path(MODEL), device, rehearse)
    batch_size = model.best_batch_size()
    img = h.natural_image(224)
    explainer = RISE(n_masks=n_masks, grid=GRID, p_keep=P1, baseline=0.0, seed=seed, array_backend=h.backend(rehearse))

    def call() -> dict[str, Any]:
        exp = explainer.explain(model, img)
        return {"model_seconds": exp.model_seconds, "n_queries": exp.n_queries, "batch_size": batch_size}

    return call


def run(args: argparse.Namespace) -> dict[str, Any]:
    h.onnx_model_path(MODEL)  # export once in this process (the children only read the file)
    runs: dict[str, dict[int, list[h.IsolatedRun]]] = {"onnxplain": {}, "reference": {}}
    cases = [(n, who) for n in args.masks for who in ("onnxplain", "reference")]
    for r in range(args.repeats):
        for n, who in cases if r % 2 == 0 else cases[::-1]:
            if who == "onnxplain":
                res = h.run_isolated(
                    "benchmarks.peers_rise:setup_ours",
                    {"n_masks": n, "seed": args.seed, "device": args.device, "rehearse": args.rehearse_cuda_path},
                )
            else:
                res = h.run_isolated(
                    "benchmarks.peers_rise:setup_reference",
                    {"path": str(args.rise_reference), "n_masks": n, "seed": args.seed, "device": args.device},
                )
            runs[who].setdefault(n, []).append(res)
            print(
                f"  [{r + 1}/{args.repeats}] {who} N={n}: {res.seconds:.2f} s, peak {h.fmt_bytes(res.peak_process)} "
                f"(+{h.fmt_bytes(res.added)})",
                file=sys.stderr,
                flush=True,
            )
    rows = []
    for n in args.masks:
        ours, ref = runs["onnxplain"][n], runs["reference"][n]

        def med(items: list[h.IsolatedRun], key: Callable[[h.IsolatedRun], float]) -> float:
            return float(statistics.median(key(i) for i in items))

        row = {
            "n_masks": n,
            "ours_seconds": med(ours, lambda i: i.seconds),
            "ref_seconds": med(ref, lambda i: i.seconds),
            "ref_generate_seconds": med(ref, lambda i: i.result["generate_seconds"]),
            "ref_forward_seconds": med(ref, lambda i: i.result["forward_seconds"]),
            "ours_model_seconds": med(ours, lambda i: i.result["model_seconds"]),
            "ours_batch_size": ours[0].result["batch_size"],
            "ours_peak": med(ours, lambda i: i.peak_process),
            "ref_peak": med(ref, lambda i: i.peak_process),
            "ours_added": med(ours, lambda i: i.added),
            "ref_added": med(ref, lambda i: i.added),
            "peak_reset": all(i.peak_reset for i in ours + ref),
            "runs": {"onnxplain": [i.to_dict() for i in ours], "reference": [i.to_dict() for i in ref]},
        }
        row["time_ratio"] = row["ours_seconds"] / row["ref_seconds"]
        row["peak_ratio"] = row["ours_peak"] / row["ref_peak"]
        row["added_ratio"] = row["ours_added"] / row["ref_added"] if row["ref_added"] else float("nan")
        rows.append(row)
    best = h.best_per_sample_time(h.onnx_model_path(MODEL), (3, 224, 224), seconds_per_size=0.3, device=args.device)
    return {"rows": rows, "best_time": best.to_dict(), "reference_commit": _git_head(args.rise_reference)}


def _git_head(path: Path) -> str | None:
    import subprocess

    out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def markdown(res: dict[str, Any]) -> str:
    head = "### RISE vs the reference code (eclique/RISE): peak memory and time\n\n"
    if res.get("skipped"):
        return head + f"Skipped: {res['skipped']}. Run `python -m benchmarks.peers_rise --rise-reference /path/to/RISE`."
    table_rows = []
    for r in res["rows"]:
        met = r["added_ratio"] <= 0.1 and r["time_ratio"] < 1.0
        table_rows.append(
            [
                f"{r['n_masks']:,}",
                f"{h.fmt_bytes(r['ours_added'])} / {h.fmt_bytes(r['ours_peak'])}",
                f"{h.fmt_bytes(r['ref_added'])} / {h.fmt_bytes(r['ref_peak'])}",
                f"**{r['added_ratio']:.3f}** / {r['peak_ratio']:.3f}",
                h.fmt_s(r["ours_seconds"]),
                f"{h.fmt_s(r['ref_seconds'])} (masks {h.fmt_s(r['ref_generate_seconds'])}, "
                f"forward {h.fmt_s(r['ref_forward_seconds'])})",
                f"**{r['time_ratio']:.3f}**",
                "met" if met else "NOT met",
            ]
        )
    table = h.md_table(
        [
            "N masks",
            "onnxplain: added / total peak RSS",
            "reference: added / total peak RSS",
            "memory ratio ours/ref (added / total)",
            "onnxplain time",
            "reference time",
            "time ratio",
            "goal (≤ 1/10 memory, faster)",
        ],
        table_rows,
    )
    first = res["rows"][0]
    notes = [
        f"Command: `{res['command']}`; {res['repeats']} repetitions per cell, each a fresh subprocess, "
        f"interleaved (ours, ref, …, then reversed); medians; {h.load_line(res['load_before'], res['load_after'])}; "
        f"reference at commit {res['reference_commit'] or 'unknown'}.",
        f"One 3×224×224 image (scikit-image `chelsea`), grid s = {GRID}, p1 = {P1}, the harness's small 3×224×224 CNN "
        f"(softmax; torch for the reference, ONNX for us, automatic batch size {first['ours_batch_size']}); model time "
        f"inside our runs: " + ", ".join(f"{h.fmt_s(r['ours_model_seconds'])} at N={r['n_masks']:,}" for r in res["rows"]) + ".",
        "Added = peak RSS during the explanation minus RSS right before it (the kernel's peak mark is reset after "
        "imports and model loading); total = the process's peak RSS (the reference process also holds torch; ours "
        "does not import it). The reference runs on CPU with `torch.Tensor.cuda` patched to a no-op; its time "
        "includes `generate_masks` (one-off per mask set, but needed before any explanation).",
    ]
    return head + table + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rise-reference", type=Path, default=None, help="local clone of github.com/eclique/RISE")
    parser.add_argument(
        "--repeats", type=int, default=2, help="fresh-process runs per cell (default 2: the reference needs ~1 min per pair)"
    )
    parser.add_argument("--masks", type=int, nargs="+", default=[4000, 8000], help="N values (default 4000 8000)")
    parser.add_argument("--seed", type=int, default=0)
    h.add_device_options(parser)
    args = parser.parse_args(argv)
    load_before = h.load_average()
    if args.rise_reference is None:
        res: dict[str, Any] = {"skipped": "no --rise-reference path given"}
    else:
        if not (args.rise_reference / "explanations.py").is_file():
            raise SystemExit(f"{args.rise_reference} does not look like a clone of eclique/RISE (no explanations.py).")
        res = run(args)
    res.update(
        {"command": h.command(argv), "repeats": args.repeats, "load_before": load_before, "load_after": h.load_average()}
    )
    return h.publish(NAME, res, markdown(res), save=not res.get("skipped"))


if __name__ == "__main__":
    sys.exit(main())
