"""Explaining an int8-quantised model: the demo MNIST CNN, float32 vs its int8 QDQ quantisation.

Vendors ship quantised models; an auditor can only query them. This measures how much the
explanations of the int8 model differ from the float model's (a fidelity measurement, not a
speed one):

- **the int8 model**: ``onnxruntime.quantization.quantize_static`` on the shipped demo ONNX
  (QDQ format, int8 weights and activations, per-tensor, MinMax calibration) calibrated on 128
  MNIST test digits disjoint from the explained ones (``train_idx`` of ``--mnist``; without it, on
  the demo's own digits, which then are also the explained ones);
- **agreement**: GEEX, RISE and LIME explain the same 16 held-out digits on both models with the
  same seed (so both see the same perturbations) and the float model's top class as target;
  Spearman and top-10 % intersection of the channel-mean maps (``onnxplain.evaluation.agreement``);
  the seed-to-seed floor (float model, seed 0 vs seed 1) shows what Monte-Carlo noise alone gives;
- **faithfulness**: the GEEX paper's deletion AOPC (``aopc_deletion``, baseline 0, stride 10) of
  each model's maps on that model, float vs int8;
- **the models themselves**: top-1 agreement and accuracy of both on the held-out digits.

    python -m benchmarks.quantised [--mnist ../shared/data/mnist/mnist_test.npz] [--n-images 16]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "quantised"
SEED = 0


def load(mnist: Path | None, n_images: int) -> dict[str, Any]:
    """Explained digits, their labels, calibration digits, the held-out set for accuracy, and the source."""
    if mnist is None:
        from onnxplain.demo import load_demo_digits

        x, y = load_demo_digits()
        return {"x": x[:n_images], "y": y[:n_images], "calib": x, "all_x": x, "all_y": y,
                "source": f"the {min(n_images, len(x))} digits shipped with the demo (also the calibration set)"}
    with np.load(mnist) as data:
        held, train = data["heldout_idx"], data["train_idx"]
        images = data["x"].astype(np.float32)[:, None] / 255.0
        labels = data["y"].astype(np.int64)
    return {
        "x": images[held[:n_images]],
        "y": labels[held[:n_images]],
        "calib": images[train[:128]],
        "all_x": images[held],
        "all_y": labels[held],
        "source": f"the first {n_images} held-out MNIST test digits ({mnist.name}); calibration on 128 "
        f"other digits (train_idx); accuracy on all {len(held)} held-out digits",
    }


def quantise(calibration: np.ndarray, folder: Path) -> Path:
    """The demo model quantised to int8 (QDQ) with ``quantize_static``; returns its path."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from onnxplain.demo import demo_onnx_path

    class Digits(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"pixels": calibration[i : i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    out = folder / "mnist_cnn_int8.onnx"
    logging.getLogger().setLevel(logging.ERROR)  # a pre-processing hint at WARNING level
    quantize_static(
        str(demo_onnx_path()),
        str(out),
        Digits(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    return out


def explainers(queries: int) -> dict[str, Any]:
    from onnxplain.blackbox import GEEX, LIME, RISE

    return {
        "GEEX": lambda seed: GEEX(n_queries=queries, seed=seed),
        "RISE": lambda seed: RISE(n_masks=queries, seed=seed),
        "LIME": lambda seed: LIME(n_samples=queries, seed=seed),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.evaluation import agreement, aopc_deletion
    from onnxplain.models import OnnxModel, predict

    data = load(args.mnist, args.n_images)
    folder = Path(tempfile.mkdtemp(prefix="onnxplain-quantised-"))
    int8_path = quantise(data["calib"], folder)
    models = {
        "float32": OnnxModel(h.demo_onnx(), output="probs", device="cpu", batch_size=256),
        "int8": OnnxModel(int8_path, output="probs", device="cpu", batch_size=256),
    }
    x = data["x"]
    targets, _ = predict(models["float32"], x)
    top1 = {k: predict(m, data["all_x"])[0] for k, m in models.items()}
    rows = []
    for name, make in explainers(args.queries).items():
        t0 = time.perf_counter()
        maps = {k: make(SEED).explain(m, x, target=targets) for k, m in models.items()}
        floor = make(SEED + 1).explain(models["float32"], x, target=targets)
        agree = agreement(maps["float32"], maps["int8"])
        noise = agreement(maps["float32"], floor)
        aopc = {
            k: aopc_deletion(models[k], x, maps[k], target=targets, stride=10, replacement="baseline", baseline=0.0)
            for k in models
        }
        rows.append(
            {
                "method": name,
                "spearman": agree["spearman"].score,
                "top10": agree["top10%"].score,
                "spearman_floor": noise["spearman"].score,
                "top10_floor": noise["top10%"].score,
                "aopc": {k: v.score for k, v in aopc.items()},
                "aopc_per_image": {k: v.per_image for k, v in aopc.items()},
                "spearman_per_image": agree["spearman"].per_image,
                "seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"  {name}: Spearman {rows[-1]['spearman']:.3f} (floor {rows[-1]['spearman_floor']:.3f}), "
            f"AOPC {rows[-1]['aopc']['float32']:.4f} vs {rows[-1]['aopc']['int8']:.4f}",
            file=sys.stderr,
            flush=True,
        )
    return {
        "source": data["source"],
        "n_images": len(x),
        "queries": args.queries,
        "rows": rows,
        "top1_agreement": float((top1["float32"] == top1["int8"]).mean()),
        "accuracy": {k: float((v == data["all_y"]).mean()) for k, v in top1.items()},
        "n_accuracy": len(data["all_y"]),
        "int8_bytes": int8_path.stat().st_size,
        "float_bytes": h.demo_onnx().stat().st_size,
    }


def markdown(res: dict[str, Any]) -> str:
    rows = [
        [
            r["method"],
            f"{r['spearman']:.3f} (floor {r['spearman_floor']:.3f})",
            f"{r['top10']:.3f} (floor {r['top10_floor']:.3f})",
            f"{r['aopc']['float32']:.4f}",
            f"{r['aopc']['int8']:.4f}",
        ]
        for r in res["rows"]
    ]
    table = h.md_table(
        [
            f"method ({res['queries']} queries)",
            "Spearman float vs int8 (seed-to-seed floor)",
            "top-10 % intersection (floor)",
            "AOPC deletion, float32",
            "AOPC deletion, int8",
        ],
        rows,
    )
    acc = res["accuracy"]
    return "\n".join(
        [
            f"### Demo MNIST CNN: float32 vs int8 QDQ ({res['n_images']} digits)",
            "",
            table,
            "",
            f"- Command: `{res['command']}`; explained: {res['source']}.",
            f"- The int8 model: `quantize_static` (QDQ, int8 weights and activations, MinMax) of the shipped "
            f"demo ONNX ({res['float_bytes'] / 1024:.0f} KiB → {res['int8_bytes'] / 1024:.0f} KiB); top-1 "
            f"agreement with the float model {res['top1_agreement']:.2%}, accuracy {acc['float32']:.2%} (float32) "
            f"vs {acc['int8']:.2%} (int8) on {res['n_accuracy']} held-out digits.",
            "- Agreement: the same seed on both models (the same perturbations), target = the float model's top "
            "class; channel-mean maps; mean over digits. The floor compares the float model's maps at seeds 0 "
            "and 1: agreement above it means quantisation changed the maps less than Monte-Carlo noise does.",
            "- AOPC: the GEEX paper's normalised deletion AOPC (replacement 0, stride 10 pixels), each model's "
            "maps on that model (higher is better).",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=None, help="mnist_test.npz (default: the demo's 10 digits)")
    parser.add_argument("--n-images", type=int, default=16, help="digits explained (default 16)")
    parser.add_argument("--queries", type=int, default=2000, help="budget of every method (default 2000)")
    args = parser.parse_args(argv)
    res = run(args)
    res["command"] = h.command(argv)
    return h.publish(NAME, res, markdown(res))


if __name__ == "__main__":
    sys.exit(main())
