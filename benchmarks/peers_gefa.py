"""GEFA: onnxplain (ONNX Runtime) vs the authors' reference code (caiy0220/GEFA), same masks.

The reference has no licence: it is never copied here. Pass a local clone with
``--gefa-reference PATH``; its ``gefa.gefa.GEFA4Image`` is imported from there at run time (the
comparison is skipped without a path). It hard-codes ``.cuda()`` (mask smoothing, ranking, the
final product); on a CPU run this process turns ``torch.Tensor.cuda`` and ``torch.nn.Module.cuda``
into no-ops before building it, so its code runs as written, on the CPU.

Setting: one image and one model, the reference's ImageNet conventions (``img_config.yaml``: blur
baseline 31/σ 5, softmax probabilities, 11-node α grid, rank transform r/(d−1) + U/d, rejection
of empty/full masks, raw control variate), with the smoothing kernel scaled to the image size as
our default (51/σ 11 at 299² → 39/σ 8.24 at 224²). Ours: ``GEFA.preset("imagenet",
smoothing=auto_smoothing(H, W))`` on the ONNX export; the reference: ``GEFA4Image(N, (C,H,W),
baseline="blur", filter_w, filter_s)`` on the torch module wrapped in a softmax.

- **Agreement, same masks**: the reference's precomputed ``masks``/``paths``/``mask_weights`` are
  replaced by the pairs our seeded stream draws (through the public ``GEFA.masks(H, W).block``),
  so both estimators see identical queries; the maps must agree to float error (ours is per
  pixel divided by C: we compare C × our channel 0 with its (1,H,W) map).
- **Time**: the reference's ``explain`` with those masks (its per-explicand cost: masks and
  weights are built once in its constructor and reused), its constructor (the mask set; paid once
  per mask set), and our ``explain`` (masks drawn block by block inside every call), plus our
  default ``GEFA(N)`` for reference; interleaved rounds, medians.

    python -m benchmarks.peers_gefa --gefa-reference /tmp/gefa-ref [--queries 4000] [--repeats 3]
    python -m benchmarks.peers_gefa --gefa-reference /tmp/gefa-ref --model demo --queries 128 --repeats 1 --no-save  # smoke
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "peers_gefa"


def import_reference(path: Path, device: str) -> Any:
    """The reference's ``GEFA4Image``, imported from the user's clone (never vendored); on CPU its
    ``.cuda()`` calls are made no-ops first."""
    import torch

    path = Path(path).resolve()
    if not (path / "gefa" / "gefa.py").is_file():
        raise SystemExit(f"{path} does not look like a clone of caiy0220/GEFA (no gefa/gefa.py).")
    if not device.startswith("cuda"):
        torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
        torch.nn.Module.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    sys.path.insert(0, str(path))
    from gefa.gefa import GEFA4Image  # type: ignore[import-not-found]

    return GEFA4Image


def our_pairs(gefa: Any, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Every antithetic pair's mask (P, H, W) bool and α (P,) as our explainer draws them."""
    from onnxplain.blackbox.sampling import NumpyOps, block_ranges

    ops = NumpyOps()
    law = gefa.masks(height, width)
    blocks = [law.block(ops, k, lo // 2, (hi - lo) // 2) for k, (lo, hi) in enumerate(block_ranges(gefa.n_perturbations))]
    masks = np.concatenate([b.masks for b in blocks]).reshape(-1, height, width) > 0.5
    return masks, np.concatenate([b.alpha for b in blocks])


def inject(reference: Any, masks: np.ndarray, alpha: np.ndarray) -> None:
    """Give the reference our pairs in its own layout: [m; ¬m], paths [α; 1 − α], its weights."""
    import torch

    hits = torch.from_numpy(masks[:, None])
    paths = torch.from_numpy(alpha.astype(np.float32).reshape(-1, 1, 1, 1))
    reference.masks = torch.cat([hits, ~hits])
    reference.paths = torch.cat([paths, 1 - paths])
    reference.mask_weights = reference._get_mask_weights()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from onnxplain.blackbox import GEFA
    from onnxplain.blackbox.gefa_masks import auto_smoothing

    gefa4image = import_reference(args.gefa_reference, args.device)
    shape = h.input_shape_of(args.model)
    c, height, width = shape
    net = torch.nn.Sequential(h.torch_model(args.model), torch.nn.Softmax(dim=1)).eval().to(args.device)
    for p in net.parameters():
        p.requires_grad_(False)
    model = h.query_model(h.onnx_model_path(args.model), args.device, args.rehearse_cuda_path)
    bk = h.backend(args.rehearse_cuda_path)
    x = h.demo_digit(0) if args.model == "demo" else h.natural_image(height)
    target = int(np.argmax(model(x[None])[0]))
    img = torch.from_numpy(x[None].copy()).to(args.device)
    n = args.queries
    smoothing = auto_smoothing(height, width) or (1, 1.0)  # filter_w ≤ 1: the reference skips smoothing

    ours = GEFA.preset("imagenet", n_queries=n, smoothing=smoothing, seed=args.seed, array_backend=bk)
    default = GEFA(n, seed=args.seed, array_backend=bk)

    def build_reference() -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            return gefa4image(n, shape, baseline="blur", filter_w=smoothing[0], filter_s=smoothing[1])

    reference = build_reference()
    masks, alpha = our_pairs(ours, height, width)
    inject(reference, masks, alpha)

    def construct() -> None:
        build_reference()

    cases = {
        "onnxplain imagenet preset": lambda: ours.explain(model, x, target=target).attributions,
        "onnxplain default": lambda: default.explain(model, x, target=target).attributions,
        "reference explain": lambda: reference.explain(net, img, batch_size=64, target_class=target).cpu().numpy(),
        "reference masks (constructor)": construct,
    }
    timings, maps = h.interleave(cases, repeats=args.repeats)
    ref_map = maps["reference explain"][0]
    ours_map = maps["onnxplain imagenet preset"][0] * c
    diff = float(np.abs(ours_map - ref_map).max() / np.abs(ref_map).max())
    best = h.best_per_sample_time(h.onnx_model_path(args.model), shape, seconds_per_size=0.3, device=args.device)
    return {
        "model": args.model,
        "shape": list(shape),
        "queries": n,
        "target": target,
        "smoothing": list(smoothing),
        "torch_threads": torch.get_num_threads(),
        "timings": {k: v.to_dict() for k, v in timings.items()},
        "ratio_explain": h.ratio(timings["onnxplain imagenet preset"], timings["reference explain"]),
        "ratio_with_masks": h.ratio(
            timings["onnxplain imagenet preset"].median,
            timings["reference explain"].median + timings["reference masks (constructor)"].median,
        ),
        "max_rel_diff_same_masks": diff,
        "pearson_same_masks": h.pearson(ours_map, ref_map),
        "pearson_default_vs_ref": h.pearson(maps["onnxplain default"][0], ref_map),
        "model_limit_seconds": best.limit(n + 2),
        "reference_commit": _git_head(args.gefa_reference),
    }


def _git_head(path: Path) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def markdown(res: dict[str, Any]) -> str:
    head = "### GEFA vs the authors' reference code (caiy0220/GEFA), same masks\n\n"
    if res.get("skipped"):
        return head + f"Skipped: {res['skipped']}. Run `python -m benchmarks.peers_gefa --gefa-reference /path/to/GEFA`."
    t = {k: v["median"] for k, v in res["timings"].items()}
    rows = [
        ["reference `GEFA4Image.explain` (our masks injected, torch CPU, batch_size=64)", h.fmt_s(t["reference explain"]), "1", "—"],
        ["reference constructor (its mask set: noise, blur, ranks, weights)", h.fmt_s(t["reference masks (constructor)"]), "—", "—"],
        [
            "onnxplain `GEFA.preset(\"imagenet\")` (masks drawn inside the call)",
            h.fmt_s(t["onnxplain imagenet preset"]),
            f"**{res['ratio_explain']:.3f}** ({res['ratio_with_masks']:.3f} vs explain + constructor)",
            f"max |Δ| **{res['max_rel_diff_same_masks']:.1e}** of max, Pearson {res['pearson_same_masks']:.6f}",
        ],
        [
            "onnxplain `GEFA(N)` (default conventions, own masks)",
            h.fmt_s(t["onnxplain default"]),
            f"{t['onnxplain default'] / t['reference explain']:.3f}",
            f"Pearson {res['pearson_default_vs_ref']:.3f} (different masks and α law)",
        ],
    ]
    notes = [
        f"Command: `{res['command']}`; {res['repeats']} interleaved rounds after a warm-up; medians; "
        f"{h.load_line(res['load_before'], res['load_after'])}; reference at commit {res['reference_commit'] or 'unknown'}.",
        f"Model `{res['model']}` {tuple(res['shape'])}, target {res['target']}, N = {res['queries']} masked forwards "
        f"(+ f(x), f(x̂) for us), smoothing {tuple(res['smoothing'])}; reference on CPU with `.cuda()` patched to a "
        f"no-op, {res['torch_threads']} torch threads. Model limit (N + 2 forwards at the best plain-ORT per-sample "
        f"time): {h.fmt_s(res['model_limit_seconds'])}.",
        "Same masks, same queries: the maps differ only by float error. The reference keeps the scores, "
        "`torch.cov` and the weights in float32, so on a model whose probability barely moves (the random-weight "
        "`small224`: y varies by ~1e-4 around 0.109) cancellation in y − β̂h leaves ~1e-3 relative differences; "
        "with float64 scores the two estimators agree to ~1e-8 (`tests/blackbox/test_gefa.py`).",
    ]
    table = h.md_table(["explainer", "median time", "ratio to reference explain", "agreement with reference"], rows)
    return head + table + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gefa-reference", type=Path, default=None, help="local clone of github.com/caiy0220/GEFA")
    parser.add_argument("--model", choices=("small224", "resnet18", "demo"), default="small224")
    parser.add_argument("--queries", type=int, default=4000, help="N, masked forwards per explanation (default 4000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="print only (smoke runs): no results file, no README block")
    h.add_device_options(parser)
    args = parser.parse_args(argv)
    load_before = h.load_average()
    if args.gefa_reference is None:
        res: dict[str, Any] = {"skipped": "no --gefa-reference path given"}
    else:
        res = run(args)
    res.update(
        {"command": h.command(argv), "repeats": args.repeats, "load_before": load_before, "load_after": h.load_average()}
    )
    return h.publish(NAME, res, markdown(res), save=not res.get("skipped") and not args.no_save)


if __name__ == "__main__":
    sys.exit(main())
