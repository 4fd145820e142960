"""GEEX: onnxplain (ONNX Runtime) vs the authors' reference code (caiy0220/GEEX), side by side.

The reference has no licence: it is never copied here. Pass a local clone with
``--geex-reference PATH``; its ``geex.GEEX`` explainer is imported from there at run time (the
comparison is skipped without a path).

Setting (the reference's MNIST example, in our pixel units): the demo MNIST CNN, as a torch
module wrapped in softmax for the reference (``onnxplain.demo.load_demo_torch()``, which takes
[0,1] pixels), as the shipped ONNX model with ``output="probs"`` for us; baseline 0; n* = 5000
forwards each (the reference's HEAD counts n* as total forwards, 2500 mirrored pairs; ours
makes 5000 perturbed forwards + f(x) + f(x̂)); the reference's default ``batch_size=64`` base
noises per call (128 queries).

σ: the paper's σ = 1.0 in normalised MNIST units is 0.3081 in pixels. The reference applies noise
of std σ/2 and divides by σ² (notes §1.3 P2), uses one noise plane and α_k = k/(n*−1) over the
pairs (P1: only [0, ½) of the path). ``GEEX.reference(sigma=0.3081)`` reproduces those
conventions; for "the same noise" the reference's ``masks`` (its N(0, I/4) noise, drawn at
construction) are replaced by our seeded stream's standard normals / 2, so both explainers make
exactly the same queries and the maps must agree up to float error and the reference's chunk
weighting (a global factor 128·⌈n*/128⌉/n*).

    python -m benchmarks.peers_geex --geex-reference /tmp/geex-ref [--repeats 5] [--queries 5000]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "peers_geex"
SIGMA_REF = 0.3081  # the paper's σ = 1.0 (normalised MNIST units) in [0,1] pixel units


def import_reference(path: Path) -> Any:
    """The reference's ``geex`` module, imported from the user's clone (never vendored)."""
    path = Path(path).resolve()
    if not (path / "geex.py").is_file():
        raise SystemExit(f"{path} does not look like a clone of caiy0220/GEEX (no geex.py).")
    sys.path.insert(0, str(path))
    import geex  # type: ignore[import-not-found]

    return geex


def our_noise(seed: int, pairs: int, shape: tuple[int, int, int], block: int, backend: str = "numpy") -> np.ndarray:
    """The standard normals our GEEX (shared-channel mode) draws for its ``pairs`` mirror pairs.

    Reproduces the draw order of ``onnxplain.blackbox.geex`` block by block (U[0,1) for α, then
    the noise) from :mod:`onnxplain.blackbox.sampling`'s per-block generators. If that order
    changes, the agreement below drops and shows it.
    """
    from onnxplain.blackbox.sampling import NumpyOps, TorchOps

    ops = TorchOps("cpu") if backend == "torch" else NumpyOps()
    per_block = block // 2
    out = []
    for k, first in enumerate(range(0, pairs, per_block)):
        m = min(per_block, pairs - first)
        rng = ops.rng(seed, "geex", k)
        ops.uniform(rng, m)
        out.append(ops.to_numpy(ops.normal(rng, (m, *shape))))
    return np.concatenate(out)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from onnxplain.blackbox import GEEX
    from onnxplain.blackbox.sampling import BLOCK
    from onnxplain.demo import load_demo_torch

    geex_ref = import_reference(args.geex_reference)
    net = torch.nn.Sequential(load_demo_torch(), torch.nn.Softmax(dim=1)).eval().to(args.device)
    for p in net.parameters():
        p.requires_grad_(False)
    model = h.query_model(h.demo_onnx(), args.device, args.rehearse_cuda_path)
    bk = h.backend(args.rehearse_cuda_path)
    batch_size = model.best_batch_size()
    x = h.demo_digit(args.digit)
    target = int(np.argmax(model(x[None])[0]))
    n = args.queries
    img = torch.from_numpy(x[None].copy())

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        ref = geex_ref.GEEX(n, SIGMA_REF, (1, 28, 28), baseline=0)
    same = our_noise(args.seed, n // 2, (1, 28, 28), BLOCK, "torch" if args.rehearse_cuda_path else "numpy")
    ref.masks = torch.from_numpy(same) / 2  # the reference's noise is N(0, I/4): randn / 2

    ours_ref = GEEX.reference(n_queries=n, sigma=SIGMA_REF, seed=args.seed, array_backend=bk)
    ours_default = GEEX(n_queries=n, sigma=SIGMA_REF / 2, seed=args.seed, array_backend=bk)

    def run_ref() -> np.ndarray:
        return ref.explain(net, img, batch_size=64, target_class=target).numpy()

    def run_ours_ref() -> np.ndarray:
        return ours_ref.explain(model, x, target=target).attributions

    def run_ours_default() -> np.ndarray:
        return ours_default.explain(model, x, target=target).attributions

    timings, maps = h.interleave(
        {"onnxplain reference preset": run_ours_ref, "onnxplain default": run_ours_default, "reference": run_ref},
        repeats=args.repeats,
        min_block=h.MIN_BLOCK_SECONDS,
    )
    best = h.best_per_sample_time(h.demo_onnx(), (1, 28, 28), seconds_per_size=0.3, device=args.device)
    ref_map = maps["reference"].reshape(1, 28, 28)
    ours_map = maps["onnxplain reference preset"]
    scale = float((ours_map * ref_map).sum() / (ref_map * ref_map).sum())
    rel = float(np.abs(ours_map - scale * ref_map).max() / np.abs(ours_map).max())
    return {
        "queries": n,
        "sigma": SIGMA_REF,
        "digit": args.digit,
        "target": target,
        "ours_batch_size": batch_size,
        "reference_calls_of": 128,
        "torch_threads": torch.get_num_threads(),
        "timings": {k: v.to_dict() for k, v in timings.items()},
        "ratio_preset": h.ratio(timings["onnxplain reference preset"], timings["reference"]),
        "ratio_default": h.ratio(timings["onnxplain default"], timings["reference"]),
        "pearson_same_noise": h.pearson(ours_map, ref_map),
        "scale_ours_over_ref": scale,
        "max_rel_diff_after_scale": rel,
        "expected_scale": 128 * -(-n // 128) / n,
        "pearson_default_vs_ref": h.pearson(maps["onnxplain default"], ref_map),
        "model_limit_seconds": best.limit(n + 2),
        "best_time": best.to_dict(),
        "reference_commit": _git_head(args.geex_reference),
    }


def _git_head(path: Path) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def markdown(res: dict[str, Any]) -> str:
    if res.get("skipped"):
        return (
            "### GEEX vs the authors' reference code\n\n"
            f"Skipped: {res['skipped']}. Run `python -m benchmarks.peers_geex --geex-reference /path/to/GEEX`."
        )
    t = res["timings"]
    ref = t["reference"]["median"]
    rows = [
        [
            "reference (caiy0220/GEEX `GEEX.explain`, torch CPU, batch_size=64)",
            h.fmt_s(ref),
            "1",
            "—",
        ],
        [
            "onnxplain `GEEX.reference(sigma=0.3081)` (ONNX Runtime, same queries)",
            h.fmt_s(t["onnxplain reference preset"]["median"]),
            f"**{res['ratio_preset']:.3f}** ({1 / res['ratio_preset']:.1f}× faster)",
            f"Pearson **{res['pearson_same_noise']:.5f}** with the same noise",
        ],
        [
            "onnxplain `GEEX(sigma=0.154)` (default conventions)",
            h.fmt_s(t["onnxplain default"]["median"]),
            f"{res['ratio_default']:.3f} ({1 / res['ratio_default']:.1f}× faster)",
            f"Pearson {res['pearson_default_vs_ref']:.3f} (own noise, full α path, independent scale)",
        ],
    ]
    met = res["ratio_preset"] <= 0.5
    notes = [
        f"Command: `{res['command']}`; {res['repeats']} interleaved rounds after a warm-up, each "
        f"timing a block of consecutive calls (≥ {h.MIN_BLOCK_SECONDS:g} s) per contender after a {h.SETTLE_SECONDS:g} s pause; "
        f"{h.load_line(res['load_before'], res['load_after'])}; reference at commit {res['reference_commit'] or 'unknown (not a git checkout)'}.",
        f"Demo MNIST CNN, digit {res['digit']} (target {res['target']}), n* = {res['queries']} forwards each, "
        f"σ = {res['sigma']} px (the paper's σ = 1.0 in normalised units; applied std σ/2). Ours: automatic batch "
        f"size {res['ours_batch_size']}; reference: 128 queries per torch call, {res['torch_threads']} torch threads.",
        f"Goal ours ≥ 2× faster at equal forwards: {'met' if met else 'NOT met'}. "
        f"Model limit (n*+2 forwards at the best plain-ORT per-sample time): {h.fmt_s(res['model_limit_seconds'])}.",
        f"Same noise: the reference's masks are set to our seeded stream's normals / 2, so both make identical queries; "
        f"ours = {res['scale_ours_over_ref']:.4f} × reference (expected {res['expected_scale']:.4f}: the reference "
        f"divides by 128·⌈n*/128⌉ instead of n*, weighting its last, shorter chunk as if full), max |difference| after that scale "
        f"{res['max_rel_diff_after_scale']:.1e} of the map's max (float32 ORT vs torch).",
    ]
    table = h.md_table(["explainer", "median time", "ratio to reference", "agreement with reference"], rows)
    return "### GEEX vs the authors' reference code\n\n" + table + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geex-reference", type=Path, default=None, help="local clone of github.com/caiy0220/GEEX")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--queries", type=int, default=5000, help="n*, forwards per explanation (default 5000)")
    parser.add_argument("--digit", type=int, default=0, help="index of the shipped demo digit")
    parser.add_argument("--seed", type=int, default=0)
    h.add_device_options(parser)
    args = parser.parse_args(argv)
    load_before = h.load_average()
    if args.geex_reference is None:
        res: dict[str, Any] = {"skipped": "no --geex-reference path given"}
    else:
        res = run(args)
    res.update(
        {"command": h.command(argv), "repeats": args.repeats, "load_before": load_before, "load_after": h.load_average()}
    )
    return h.publish(NAME, res, markdown(res), save=not res.get("skipped"))


if __name__ == "__main__":
    sys.exit(main())
