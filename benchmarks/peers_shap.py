"""Occlusion, KernelSHAP and Partition SHAP: onnxplain vs Captum and the shap package, same work.

Each pair explains the same image of the same ONNX model with the same baseline (our "blur"
x̂, resolved once and handed to the peer as an array) and the same budget:

- **Occlusion** vs ``captum.attr.Occlusion``: the same window and strides (``window="auto"``:
  all channels × ⌈H/14⌉², stride half the window), Captum's ``perturbations_per_eval`` = our
  model's batch size;
- **KernelSHAP** vs ``captum.attr.KernelShap``: the same superpixels (ours, as Captum's
  ``feature_mask``), the same ``n_samples``; ours with ``sampling="captum", efficiency="captum",
  paint="copy"`` (Captum's estimator; each side draws its own rows, so the maps differ by
  Monte-Carlo noise);
- **Partition SHAP** vs ``shap.PartitionExplainer`` with an ``Image`` masker holding x̂,
  ``max_evals`` = our ``n_queries``, ``batch_size=64`` (our step), ``outputs=[t]`` (the same
  recursion: the maps agree to float rounding unless priorities tie).

The peers see the model as a user writes it: a function around a plain ONNX Runtime session
returning softmax probabilities (torch tensors for Captum, HWC numpy for shap); ours is an
``OnnxModel(output="probs")`` with its automatic batch size. Interleaved repetitions, medians,
ratio ours/peer; agreement = Pearson correlation of the maps.

    python -m benchmarks.peers_shap [--repeats 3] [--samples 2048] [--evals 2000] [--skip-224]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "peers_shap"


class PlainModel:
    """softmax(plain ORT session(batch)) with the time spent inside the session."""

    def __init__(self, path: Any, device: str = "cpu") -> None:
        self.session = h.plain_session(path, device=device)
        self.name = self.session.get_inputs()[0].name
        self.seconds = 0.0

    def __call__(self, nchw: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        logits = self.session.run(None, {self.name: np.ascontiguousarray(nchw, dtype=np.float32)})[0]
        self.seconds += time.perf_counter() - t0
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def peer_occlusion(plain: PlainModel, x: np.ndarray, b: np.ndarray, t: int, plan: Any, per_eval: int) -> np.ndarray:
    import torch
    from captum.attr import Occlusion

    forward = lambda batch: torch.from_numpy(plain(batch.numpy()))  # noqa: E731
    return Occlusion(forward).attribute(
        torch.from_numpy(x[None]), sliding_window_shapes=plan.window, strides=plan.strides,
        baselines=torch.from_numpy(b[None]), target=t, perturbations_per_eval=per_eval,
    )[0].numpy()


def peer_kernelshap(plain: PlainModel, x: np.ndarray, b: np.ndarray, t: int, labels: np.ndarray, n: int,
                    per_eval: int, seed: int) -> np.ndarray:
    import torch
    from captum.attr import KernelShap

    torch.manual_seed(seed)  # Captum draws its rows from torch's global generator
    forward = lambda batch: torch.from_numpy(plain(batch.numpy()))  # noqa: E731
    return KernelShap(forward).attribute(
        torch.from_numpy(x[None]), baselines=torch.from_numpy(b[None]), target=t,
        feature_mask=torch.from_numpy(labels)[None, None], n_samples=n, perturbations_per_eval=per_eval,
    )[0].numpy()


def peer_partition(plain: PlainModel, x: np.ndarray, b: np.ndarray, t: int, evals: int) -> np.ndarray:
    import shap

    def f_hwc(batch: np.ndarray) -> np.ndarray:
        return plain(np.asarray(batch, np.float32).transpose(0, 3, 1, 2))

    explainer = shap.PartitionExplainer(f_hwc, shap.maskers.Image(b.transpose(1, 2, 0).copy()))
    out = explainer(x.transpose(1, 2, 0)[None], max_evals=evals, batch_size=64, outputs=[t], silent=True)
    return out.values[0][..., 0].transpose(2, 0, 1)


def regime(model_name: str, image: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The three comparisons on one model and image."""
    from onnxplain.baselines import Baseline
    from onnxplain.blackbox import KernelSHAP, Occlusion, PartitionSHAP

    path = h.onnx_model_path(model_name)
    ours_model = h.query_model(path, args.device, args.rehearse_cuda_path)
    bk = h.backend(args.rehearse_cuda_path)
    per_eval = ours_model.best_batch_size()
    plain = PlainModel(path, args.device)
    t = int(np.argmax(plain(image[None])[0]))
    b = Baseline.parse("blur").resolve(image[None])[0]
    occ = Occlusion(baseline=b, array_backend=bk)
    plan = occ.plan(image.shape)
    ks = KernelSHAP(args.samples, baseline=b, sampling="captum", efficiency="captum", paint="copy", seed=args.seed,
                    array_backend=bk)
    labels, m = ks.segment(image)
    ks = KernelSHAP(args.samples, segmentation=labels, baseline=b, sampling="captum", efficiency="captum",
                    paint="copy", seed=args.seed, array_backend=bk)
    ps = PartitionSHAP(args.evals, baseline=b, seed=args.seed, array_backend=bk)
    pairs: dict[str, tuple[Callable[[], Any], Callable[[], np.ndarray], int]] = {
        "occlusion": (lambda: occ.explain(ours_model, image, t), lambda: peer_occlusion(plain, image, b, t, plan, per_eval),
                      occ.queries_per_explicand(image.shape)),
        "kernelshap": (lambda: ks.explain(ours_model, image, t),
                       lambda: peer_kernelshap(plain, image, b, t, labels, args.samples, per_eval, args.seed), args.samples),
        "partitionshap": (lambda: ps.explain(ours_model, image, t), lambda: peer_partition(plain, image, b, t, args.evals),
                          ps.queries_per_explicand(image.shape)),
    }
    rows = []
    for method, (ours, peer, queries) in pairs.items():
        in_model: dict[str, list[float]] = {"onnxplain": [], "peer": []}

        def run_ours(ours: Callable[[], Any] = ours, in_model: dict = in_model) -> np.ndarray:
            exp = ours()
            in_model["onnxplain"].append(exp.model_seconds)
            return exp.attributions

        def run_peer(peer: Callable[[], np.ndarray] = peer, in_model: dict = in_model) -> np.ndarray:
            plain.seconds = 0.0
            out = peer()
            in_model["peer"].append(plain.seconds)
            return out

        timings, maps = h.interleave(
            {"onnxplain": run_ours, "peer": run_peer}, repeats=args.repeats, min_block=h.MIN_BLOCK_SECONDS
        )
        rows.append({
            "method": method,
            "model": model_name,
            "input_shape": list(image.shape),
            "queries": queries,
            "segments": int(m) if method == "kernelshap" else None,
            "window": list(plan.window) if method == "occlusion" else None,
            "strides": list(plan.strides) if method == "occlusion" else None,
            "target": t,
            "ours_batch_size": per_eval,
            "timings": {k: v.to_dict() for k, v in timings.items()},
            "ratio": h.ratio(timings["onnxplain"], timings["peer"]),
            "model_seconds": {k: float(np.median(v)) for k, v in in_model.items()},
            "pearson": h.pearson(maps["onnxplain"], maps["peer"]),
            "max_abs_diff": float(np.abs(np.asarray(maps["onnxplain"]) - maps["peer"]).max()),
        })
    return rows


PEERS = {"occlusion": "captum Occlusion", "kernelshap": "captum KernelShap", "partitionshap": "shap PartitionExplainer"}


def markdown(res: dict[str, Any]) -> str:
    rows = [
        [
            PEERS[r["method"]],
            f"{r['model']} {'×'.join(map(str, r['input_shape']))}",
            r["queries"],
            f"{h.fmt_s(r['timings']['onnxplain']['median'])} (model {h.fmt_s(r['model_seconds']['onnxplain'])})",
            f"{h.fmt_s(r['timings']['peer']['median'])} (model {h.fmt_s(r['model_seconds']['peer'])})",
            f"**{r['ratio']:.3f}**",
            f"{r['pearson']:.4f}",
        ]
        for r in res["rows"]
    ]
    table = h.md_table(
        ["peer", "model", "queries", "onnxplain (median; in the model)", "peer (median; in the model)",
         "ratio ours/peer", "Pearson"],
        rows,
    )
    notes = [
        f"Command: `{res['command']}`; {res['repeats']} interleaved repetitions after a warm-up, each timing a "
        f"block of consecutive calls (≥ {h.MIN_BLOCK_SECONDS:g} s), medians; "
        f"{h.load_line(res['load_before'], res['load_after'])}.",
        "Same ONNX model, image, blur baseline and budget on both sides; peers call a plain ORT session "
        "(softmax outside); Captum's `perturbations_per_eval` = our automatic batch size; shap `batch_size=64`.",
        "KernelSHAP: each side draws its own coalitions (Captum's sampler and estimator on both), so the maps "
        "differ by Monte-Carlo noise; Occlusion and Partition SHAP compute the same map (Pearson ≈ 1).",
    ]
    return "### Occlusion / KernelSHAP / Partition SHAP vs Captum and shap\n\n" + table + "\n\n" + "\n".join(
        f"- {n}" for n in notes
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--samples", type=int, default=2048, help="KernelSHAP n_samples (default 2048)")
    parser.add_argument("--evals", type=int, default=2000, help="Partition SHAP n_queries / max_evals (default 2000)")
    parser.add_argument("--skip-224", action="store_true", help="only the demo CNN (28×28)")
    parser.add_argument("--model-224", default="small224", choices=("small224", "resnet18"),
                        help="the 224×224 model (default small224: the explainers' own work dominates)")
    parser.add_argument("--seed", type=int, default=0)
    h.add_device_options(parser)
    args = parser.parse_args(argv)
    load_before = h.load_average()
    rows = regime("demo", h.demo_digit(0), args)
    if not args.skip_224:
        rows += regime(args.model_224, h.natural_image(224), args)
    res = {
        "command": h.command(argv),
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": h.load_average(),
        "rows": rows,
    }
    return h.publish(NAME, res, markdown(res))


if __name__ == "__main__":
    sys.exit(main())
