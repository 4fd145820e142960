"""The world one bad-input case runs in: tiny counting models, explicands and a scratch directory.

Every model a case builds counts the samples it is asked (:class:`CountingFn` for QueryModels,
:class:`CountingNet` for torch modules), so a case can assert that a refusal spent no query; every
file a case writes lands under :attr:`Env.root`, so it can assert that a refusal wrote nothing.
The counters sit in the function/module itself, not in the adapter, because the dataset runner
resets adapter counters per image.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from onnxplain.models.base import FunctionModel, softmax

SHAPE = (3, 8, 8)
"""One explicand of the tiny models: small enough for every method at a few dozen queries."""
CLASSES = 4


def weights(seed: int = 0) -> np.ndarray:
    """W (CLASSES, C·H·W) of the tiny linear-softmax model."""
    return np.random.default_rng(seed).normal(0.0, 0.5, size=(CLASSES, int(np.prod(SHAPE))))


class CountingFn:
    """``softmax(W·vec(z))``, counting rows; with ``nan=True`` every third row answered is NaN.

    The first row (the explicand's own forward) stays finite, so the NaN shows up in the
    perturbation queries: what a flaky model or an overflow in the graph looks like.
    """

    def __init__(self, *, nan: bool = False) -> None:
        self.w = weights()
        self.nan = nan
        self.rows = 0

    def __call__(self, z: Any) -> np.ndarray:
        rows = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        out = softmax(rows @ self.w.T)
        if self.nan:
            index = self.rows + np.arange(len(rows))
            out[index % 3 == 2] = np.nan
        self.rows += len(rows)
        return out


class CountingNet(nn.Module):
    """conv(3→4, 3×3) – ReLU – linear(4·8·8 → CLASSES), counting forwarded rows; ``nan`` poisons the output."""

    def __init__(self, *, nan: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, CLASSES)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.nan = nan
        self.rows = 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += int(x.shape[0])
        out = self.fc(torch.relu(self.conv(x)).flatten(1))
        return out * float("nan") if self.nan else out


class Env:
    """Models, explicands and a scratch directory for one case.

    ``root`` is the case's own directory: inputs a case prepares are made with :meth:`file` (or
    :meth:`input_dir`) and remembered; anything else found there afterwards was written by the
    call under test. ``out`` is a path inside it that does not exist yet (where a writer is told to
    write).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.out = self.root / "out"
        self.fns: list[CountingFn] = []
        self.nets: list[CountingNet] = []
        self.inputs: set[str] = set()
        self.rng = np.random.default_rng(0)

    # -- models ---------------------------------------------------------------------------------
    def model(self, *, nan: bool = False, **kwargs: Any) -> FunctionModel:
        """A counting FunctionModel on (3, 8, 8) with 4 classes (softmax probabilities)."""
        fn = CountingFn(nan=nan)
        self.fns.append(fn)
        return FunctionModel(fn, SHAPE, CLASSES, **kwargs)

    def net(self, *, nan: bool = False) -> CountingNet:
        net = CountingNet(nan=nan)
        self.nets.append(net)
        return net

    @property
    def queries(self) -> int:
        """Samples forwarded by every model and module of this case."""
        return sum(f.rows for f in self.fns) + sum(n.rows for n in self.nets)

    # -- explicands -----------------------------------------------------------------------------
    def x(self, batch: int | None = None) -> np.ndarray:
        """A [0,1] float32 explicand (C,H,W), or a batch of them."""
        shape = SHAPE if batch is None else (batch, *SHAPE)
        return np.random.default_rng(1).uniform(0.0, 1.0, size=shape).astype(np.float32)

    # -- files ----------------------------------------------------------------------------------
    def file(self, name: str, data: bytes | str = b"") -> Path:
        """An input file the case prepares (not counted as written by the call)."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        self._remember(path)
        return path

    def input_dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        self._remember(path)
        return path

    def _remember(self, path: Path) -> None:
        for p in [path, *path.parents]:
            if p == self.root:
                break
            self.inputs.add(os.fspath(p))

    def written(self) -> list[str]:
        """Paths under ``root`` the call created (files, directories, temporary files)."""
        found = [os.fspath(p) for p in self.root.rglob("*")]
        return sorted(p for p in found if p not in self.inputs)
