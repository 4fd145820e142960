"""Before any map: are the ONNX and torch models the same function, and which classes are explained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.checks import check_targets
from onnxplain.errors import InvalidInputError

PARITY_RANDOM_SAMPLES = 8
"""Seeded uniform-noise inputs added to the explicands in the parity check."""


@dataclass(frozen=True)
class Predictions:
    """The model's outputs on the explicands and the class explained for each.

    ``scores`` (B, K) float64 model outputs (probabilities for ``output="probs"``), ``targets``
    (B,) int64: the given target(s), else the top class.
    """

    scores: np.ndarray
    targets: np.ndarray

    @property
    def target_scores(self) -> np.ndarray:
        """f_t(x) of every explicand, (B,)."""
        return self.scores[np.arange(len(self.targets)), self.targets]

    def top(self, i: int, labels: list[str], k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes of explicand ``i`` as ``(label, score)``."""
        order = np.argsort(-self.scores[i])[:k]
        return [(labels[int(c)], float(self.scores[i, c])) for c in order]


def predict(model: Any, batch: np.ndarray, target: Any = None) -> Predictions:
    """One query per explicand; ``target`` (None, an int, or one per explicand) is checked first."""
    explicit = check_targets(target, len(batch), model.num_classes)
    scores = np.asarray(model(batch), dtype=np.float64)  # the adapters refuse non-finite outputs
    targets = scores.argmax(axis=1).astype(np.int64) if explicit is None else explicit
    return Predictions(scores, targets)


def check_parity(onnx_model: Any, torch_model: Any, batch: np.ndarray, *, seed: int, tol: float) -> dict[str, Any]:
    """ONNX vs torch class probabilities on the explicands and on seeded uniform-noise inputs.

    ``ok`` when the largest |Δ probability| is at most ``tol`` and both models predict the same
    class on every explicand.
    """
    rng = np.random.default_rng(seed)
    noise = rng.random((PARITY_RANDOM_SAMPLES, *batch.shape[1:]), dtype=np.float32)
    inputs = np.concatenate([batch, noise])
    p_onnx = np.asarray(onnx_model(inputs), np.float64)
    p_torch = np.asarray(torch_model(inputs), np.float64)
    if p_onnx.shape != p_torch.shape:
        raise InvalidInputError(
            f"the ONNX model returns {p_onnx.shape[1]} classes but the torch model {p_torch.shape[1]}."
        )
    diff = np.abs(p_onnx - p_torch)
    n = len(batch)
    top_x = float((p_onnx[:n].argmax(1) == p_torch[:n].argmax(1)).mean())
    top_noise = float((p_onnx[n:].argmax(1) == p_torch[n:].argmax(1)).mean())
    max_diff = float(diff.max())
    return {
        "ok": bool(max_diff <= tol and top_x == 1.0),
        "max |Δ probability|": max_diff,
        "mean |Δ probability|": float(diff.mean()),
        "top-1 agreement (explicands)": top_x,
        "top-1 agreement (uniform noise)": top_noise,
        "samples compared": int(len(inputs)),
        "tolerance": tol,
    }
