"""Train the embedded demo model: the GEEX paper's MNIST CNN, on the fixed train split.

    python scripts/train_demo_model.py --mnist ../shared/data/mnist/mnist_test.npz \
        --out src/onnxplain/demo/assets

Trains on ``train_idx`` of the MNIST test set (the only MNIST data on these machines), reports
accuracy on ``heldout_idx``, and writes into ``--out``: ``mnist_cnn.pt`` (state_dict of
:class:`onnxplain.demo.net.MnistCNN`, which takes normalised input), ``mnist_cnn.onnx`` (exported
through :func:`onnxplain.export.export_onnx` with the normalisation inside, so it takes [0,1]
pixels) and ``digits.npz`` (the first held-out digit of each class, [0,1] float32, with labels).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from onnxplain._io import atomic_write
from onnxplain.demo import INPUT_SHAPE, LABELS, MNIST_MEAN, MNIST_STD
from onnxplain.demo.net import MnistCNN
from onnxplain.export import PixelSpaceModel, export_onnx


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return float((model(x).argmax(1) == y).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", required=True, type=Path, help="path of mnist_test.npz")
    parser.add_argument("--out", required=True, type=Path, help="asset directory to write")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.mnist.is_file():
        print(f"error: {args.mnist} does not exist", file=sys.stderr)
        return 2

    torch.manual_seed(args.seed)  # parameter initialisation of the fresh network
    rng = np.random.default_rng(args.seed)
    with np.load(args.mnist) as data:
        images = data["x"].astype(np.float32)[:, None] / 255.0
        labels = data["y"].astype(np.int64)
        train_idx, heldout_idx = data["train_idx"], data["heldout_idx"]
    x_train, y_train = torch.from_numpy(images[train_idx]), torch.from_numpy(labels[train_idx])
    x_held, y_held = torch.from_numpy(images[heldout_idx]), torch.from_numpy(labels[heldout_idx])

    net = MnistCNN()
    model = PixelSpaceModel(net, MNIST_MEAN, MNIST_STD, input_shape=INPUT_SHAPE)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    started = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(x_train)))
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            xb = x_train[idx]
            # light augmentation: random shifts of up to 2 pixels keep 8000 images from overfitting
            shift = rng.integers(-2, 3, size=2)
            xb = torch.roll(xb, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
            optimizer.zero_grad()
            loss = loss_fn(model(xb), y_train[idx])
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        print(f"epoch {epoch + 1}: held-out accuracy {accuracy(model, x_held, y_held):.4f}")
    model.eval()
    held_acc = accuracy(model, x_held, y_held)
    train_acc = accuracy(model, x_train, y_train)
    print(f"train accuracy {train_acc:.4f}, held-out accuracy {held_acc:.4f} ({time.perf_counter() - started:.0f} s)")

    args.out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    with atomic_write(args.out / "mnist_cnn.pt") as handle:
        handle.write(buffer.getvalue())
    report = export_onnx(
        net, args.out / "mnist_cnn.onnx", INPUT_SHAPE, normalize=(MNIST_MEAN, MNIST_STD), labels=LABELS, source="MnistCNN"
    )
    print(f"exported {report.path}: max |ort - torch| {report.max_abs_diff:.2e}, top-1 agreement {report.top1_agreement:.0%}")

    held_labels = labels[heldout_idx]
    picks = np.array([heldout_idx[np.flatnonzero(held_labels == c)[0]] for c in range(10)])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=images[picks], y=labels[picks], mnist_index=picks)
    with atomic_write(args.out / "digits.npz") as handle:
        handle.write(buffer.getvalue())
    summary = {"heldout_accuracy": held_acc, "train_accuracy": train_acc, "epochs": args.epochs, "seed": args.seed}
    with atomic_write(args.out / "training.json", "w") as handle:
        json.dump(summary, handle, indent=2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
