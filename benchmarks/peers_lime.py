"""LIME: onnxplain vs the ``lime`` package (marcotcr/lime), side by side, same work.

Both sides explain the same image of the same ONNX model, with

- the same superpixels (ours computed once and handed to lime's ``segmentation_fn``; ours gets
  them as a label array, so neither side pays for segmentation in the timed call),
- the same ``num_samples``, hidden segments filled with their mean colour (lime's
  ``hide_color=None``, our ``hide="mean"``), kernel width 0.25, Ridge(α=1) with intercept,
- one label (the model's top class; lime's ``top_labels=None, labels=(t,)``),
- lime's classifier as a user writes it: a numpy function around a plain ONNX Runtime session,
  returning softmax probabilities, called with lime's default ``batch_size=10``; ours is an
  ``OnnxModel(output="probs")`` with its automatic batch size.

Two regimes: the demo MNIST CNN (a cheap model: the explainer's own overhead decides; goal
ours ≥ 5× faster) and a 224×224 ResNet-18 with random weights (both bound by the model; goal
ours not slower). Agreement: Pearson correlation of the two pixel maps (goal ≥ 0.9), next to the
Monte-Carlo noise floor (each side against itself with another seed).

    python -m benchmarks.peers_lime [--repeats 5] [--samples-224 300] [--skip-224]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "peers_lime"


def lime_classifier(path: Any, input_shape: Sequence[int], device: str = "cpu") -> Any:
    """lime's ``classifier_fn``: HWC images (n, H, W, 3) → softmax probabilities, via plain ORT."""
    session = h.plain_session(path, device=device)
    name = session.get_inputs()[0].name
    channels = int(input_shape[0])

    def classify(images: np.ndarray) -> np.ndarray:
        batch = np.asarray(images, np.float32)
        batch = batch[..., :1] if channels == 1 else batch  # lime turns greyscale into RGB
        logits = session.run(None, {name: np.ascontiguousarray(batch.transpose(0, 3, 1, 2))})[0]
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    return classify


def explain_lime_pkg(image: np.ndarray, segments: np.ndarray, classify: Any, target: int, n: int, seed: int) -> np.ndarray:
    """The lime package's map for ``target``: coefficient of each segment painted on it (H, W)."""
    from lime import lime_image

    hwc = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    explainer = lime_image.LimeImageExplainer(kernel_width=0.25, random_state=seed)
    exp = explainer.explain_instance(
        hwc.astype(np.float64),
        classify,
        labels=(target,),
        hide_color=None,
        top_labels=None,
        num_samples=n,
        batch_size=10,
        segmentation_fn=lambda _img: segments,
        random_seed=seed,
    )
    coef = np.zeros(int(segments.max()) + 1)
    for seg, w in exp.local_exp[target]:
        coef[seg] = w
    return coef[segments]


def regime(
    model_name: str, image: np.ndarray, n_samples: int, repeats: int, seed: int, device: str = "cpu", rehearse: bool = False
) -> dict[str, Any]:
    """One interleaved comparison on one model; returns timings, ratios and agreement."""
    from onnxplain.blackbox import LIME

    path = h.onnx_model_path(model_name)
    shape = h.input_shape_of(model_name)
    ours_model = h.query_model(path, device, rehearse)
    bk = h.backend(rehearse)
    t0 = time.perf_counter()
    batch_size = ours_model.best_batch_size()
    auto_seconds = time.perf_counter() - t0
    segments, k = LIME(seed=seed).segment(image)
    target = int(np.argmax(ours_model(image[None])[0]))
    classify_plain = lime_classifier(path, shape, device)
    in_model = {"onnxplain": [], "lime": []}
    lime_model_seconds = [0.0]

    def classify(images: np.ndarray) -> np.ndarray:  # time lime spends in the model
        t = time.perf_counter()
        out = classify_plain(images)
        lime_model_seconds[0] += time.perf_counter() - t
        return out

    ours = LIME(n_samples=n_samples, segmentation=segments, seed=seed, array_backend=bk)

    def run_ours() -> np.ndarray:
        exp = ours.explain(ours_model, image, target=target)
        in_model["onnxplain"].append(exp.model_seconds)
        return exp.attributions[0]

    def run_lime() -> np.ndarray:
        lime_model_seconds[0] = 0.0
        out = explain_lime_pkg(image, segments, classify, target, n_samples, seed)
        in_model["lime"].append(lime_model_seconds[0])
        return out

    best = h.best_per_sample_time(path, shape, seconds_per_size=0.3, device=device)
    warm_ours = LIME(n_samples=20, segmentation=segments, seed=seed, array_backend=bk)
    cases = {"onnxplain": run_ours, "lime": run_lime}
    warm = {
        "onnxplain": lambda: warm_ours.explain(ours_model, image, target=target),
        "lime": lambda: explain_lime_pkg(image, segments, classify, target, 20, seed),
    }
    if best.batch_size != batch_size and model_name == "demo":  # overhead-bound: the batch size matters
        at_best = h.query_model(path, device, rehearse, batch_size=best.batch_size)
        in_model["onnxplain at best batch"] = []

        def run_ours_best() -> np.ndarray:
            exp = ours.explain(at_best, image, target=target)
            in_model["onnxplain at best batch"].append(exp.model_seconds)
            return exp.attributions[0]

        cases["onnxplain at best batch"] = run_ours_best
        warm["onnxplain at best batch"] = lambda: warm_ours.explain(at_best, image, target=target)
    timings, maps = h.interleave(cases, repeats=repeats, warmup_cases=warm, min_block=h.MIN_BLOCK_SECONDS)
    pearson = h.pearson(maps["onnxplain"], maps["lime"])
    floors = {"ours": None, "lime": None}
    if pearson < 0.99:  # a gap to explain: each side against itself with another seed (Monte-Carlo floor)
        other_seed = seed + 1
        ours_b = LIME(n_samples=n_samples, segmentation=segments, seed=other_seed, array_backend=bk).explain(
            ours_model, image, target=target
        )
        floors["ours"] = h.pearson(maps["onnxplain"], ours_b.attributions[0])
        floors["lime"] = h.pearson(maps["lime"], explain_lime_pkg(image, segments, classify, target, n_samples, other_seed))
    return {
        "model": model_name,
        "input_shape": list(shape),
        "n_samples": n_samples,
        "n_segments": int(k),
        "target": target,
        "ours_batch_size": batch_size,
        "device": device,
        "rehearse_cuda_path": rehearse,
        "ours_auto_batch_seconds": auto_seconds,
        "timings": {k_: v.to_dict() for k_, v in timings.items()},
        "ratio": h.ratio(timings["onnxplain"], timings["lime"]),
        "speedup": h.ratio(timings["lime"], timings["onnxplain"]),
        "ratio_at_best_batch": (
            h.ratio(timings["onnxplain at best batch"], timings["lime"]) if "onnxplain at best batch" in timings else None
        ),
        "model_seconds": {k_: float(np.median(v)) for k_, v in in_model.items()},
        "pearson": pearson,
        "pearson_ours_seeds": floors["ours"],
        "pearson_lime_seeds": floors["lime"],
        "model_limit_seconds": best.limit(n_samples + 1),
        "best_time": best.to_dict(),
    }


def markdown(res: dict[str, Any]) -> str:
    rows = []
    for r in res["regimes"]:
        t = r["timings"]
        goal = "ours ≥ 5× faster" if r["model"] == "demo" else "ours not slower"
        met = r["speedup"] >= 5 if r["model"] == "demo" else r["ratio"] <= 1.0
        rows.append(
            [
                f"{r['model']} {'×'.join(map(str, r['input_shape']))}",
                r["n_samples"],
                r["n_segments"],
                f"{h.fmt_s(t['onnxplain']['median'])} (model {h.fmt_s(r['model_seconds']['onnxplain'])})",
                f"{h.fmt_s(t['lime']['median'])} (model {h.fmt_s(r['model_seconds']['lime'])})",
                f"**{r['ratio']:.3f}** ({r['speedup']:.1f}× faster)",
                f"{goal}: {'met' if met else 'NOT met'}",
                h.fmt_s(r["model_limit_seconds"]),
                f"{r['pearson']:.3f}"
                + (
                    f" (floor: ours {r['pearson_ours_seeds']:.3f}, lime {r['pearson_lime_seeds']:.3f})"
                    if r["pearson_ours_seeds"] is not None
                    else ""
                ),
            ]
        )
    table = h.md_table(
        [
            "model",
            "num_samples",
            "segments",
            "onnxplain (median; of which in the model)",
            "lime (median; of which in the model)",
            "ratio ours/lime",
            "goal",
            "model limit",
            "Pearson ours vs lime (seed-to-seed floor)",
        ],
        rows,
    )
    notes = [
        f"Command: `{res['command']}`; interleaved repetitions after a warm-up (demo {res['repeats']}, "
        f"224×224 {res['repeats_224']}), each timing a block of consecutive calls (≥ {h.MIN_BLOCK_SECONDS:g} s) "
        f"per contender after a {h.SETTLE_SECONDS:g} s pause; medians; "
        f"{h.load_line(res['load_before'], res['load_after'])}.",
        "lime: `LimeImageExplainer(kernel_width=0.25, random_state=seed).explain_instance(..., "
        "labels=(t,), top_labels=None, hide_color=None, batch_size=10, segmentation_fn=<our segments>)` with a "
        "numpy classifier around a plain `onnxruntime.InferenceSession`; ours: `LIME(n_samples, segmentation=<same "
        "segments>, seed)` on `OnnxModel(output='probs')`, automatic batch size "
        + ", ".join(f"{r['model']}: {r['ours_batch_size']}" for r in res["regimes"])
        + " (measured once per process, "
        + ", ".join(f"{h.fmt_s(r['ours_auto_batch_seconds'])}" for r in res["regimes"])
        + ", not in the timed calls).",
        "Model limit = (num_samples + 1) × the best per-sample time of a plain ORT session (harness); "
        "'in the model' = `Explanation.model_seconds` for ours, time inside lime's `classifier_fn` for lime.",
        "Agreement: both sides draw their own random samples (both seeded), so the maps differ by Monte-Carlo "
        "noise; when they agree less than 0.99, the floor is each side against itself with seed+1.",
    ]
    for r in res["regimes"]:
        if r.get("ratio_at_best_batch") is not None:
            t = r["timings"]["onnxplain at best batch"]
            notes.append(
                f"{r['model']}: the automatic batch size ({r['ours_batch_size']}) differs from the plain-ORT sweep's best "
                f"({r['best_time']['batch_size']}); ours forced to {r['best_time']['batch_size']} in the same interleave: "
                f"{h.fmt_s(t['median'])}, ratio {r['ratio_at_best_batch']:.3f} "
                f"({1 / r['ratio_at_best_batch']:.1f}× faster than lime)."
            )
    return "### LIME vs the `lime` package\n\n" + table + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="repetitions on the demo CNN (default 5)")
    parser.add_argument("--repeats-224", type=int, default=3, help="repetitions on ResNet-18 (default 3)")
    parser.add_argument("--samples", type=int, default=1000, help="num_samples on the demo CNN (default 1000)")
    parser.add_argument(
        "--samples-224", type=int, default=200, help="num_samples on ResNet-18 (default 200: keeps the suite < 20 min)"
    )
    parser.add_argument("--skip-224", action="store_true", help="only the demo CNN")
    parser.add_argument("--seed", type=int, default=0)
    h.add_device_options(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")  # lime 0.2.0.1 always shows a progress bar
    load_before = h.load_average()
    dev = (args.device, args.rehearse_cuda_path)
    regimes = [regime("demo", h.demo_digit(0), args.samples, args.repeats, args.seed, *dev)]
    if not args.skip_224:
        regimes.append(regime("resnet18", h.natural_image(224), args.samples_224, args.repeats_224, args.seed, *dev))
    res = {
        "command": h.command(argv),
        "repeats": args.repeats,
        "repeats_224": args.repeats_224,
        "load_before": load_before,
        "load_after": h.load_average(),
        "regimes": regimes,
    }
    return h.publish(NAME, res, markdown(res))


if __name__ == "__main__":
    sys.exit(main())
