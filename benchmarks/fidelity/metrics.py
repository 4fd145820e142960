"""The metrics of the real-photo fidelity benchmark, for one photo and a batch of its maps.

Every metric ranks pixels by the **signed channel mean** of the map (what the stored (H, W) maps
are) and scores the **softmax probability** of the class the ONNX model predicts on the photo
(``OnnxModel(output="probs")``). One step = ``round(0.01·H·W)`` pixels in all three curves (502
pixels at 224², 676 at 260²), so every curve has 101 points.

a) **AOPC, the GEEX paper's ImageNet protocol** (:func:`onnxplain.evaluation.aopc_deletion`):
   cumulative deletion, deleted pixels take the value of the **blurred explicand** (Gaussian,
   kernel 31, σ 5: ``replacement="blur"``, passed here as the array blurred once per photo),
   stride = one step. Per photo the curve F_k is stored; the table's value is the authors'
   aggregate ``aggregate="curves"``: 1 − F̄_k / F̄_0 averaged over k with F̄ the curve averaged over
   the photos first (a ratio of means, what the reference code and the paper's Table 1 report).
b) **Insertion and deletion AUC, RISE's protocol** (:func:`~onnxplain.evaluation.insertion_auc`,
   :func:`~onnxplain.evaluation.deletion_auc`, ``mode="pixel"``): insertion restores pixels of x
   onto the blurred photo (RISE's substrate: Gaussian σ 5 truncated to 11×11, ``substrate="blur"``),
   deletion replaces them by black (``substrate="zero"``); trapezoid AUC on x ∈ [0, 1]. Both are
   linear in the curve, so the mean of the per-photo values is the AUC of the mean curve.
c) **Agreement with the IG reference** (``IntegratedGradients(steps=128, baseline="blur")``):
   Spearman, top-10 % intersection and cosine of the maps at full resolution
   (:func:`onnxplain.evaluation.agreement`) and after average-pooling both maps to 28×28 and
   14×14 (:func:`pool`, adaptive average pooling: bin i covers ⌊i·H/s⌋ … ⌈(i+1)·H/s⌉ − 1, as
   ``torch.nn.functional.adaptive_avg_pool2d``; 224 → 14 averages 16×16 blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.evaluation import agreement, aopc_deletion, deletion_auc, insertion_auc
from onnxplain.filters import blur
from onnxplain.models.base import QueryModel, predict

PROTOCOL_VERSION = 1
STEP_FRACTION = 0.01
AOPC_BLUR = (31, 5.0)  # the GEEX paper's blurred explicand
INSERTION_BLUR = (11, 5.0)  # RISE's insertion substrate
AGREEMENT_SCALES: tuple[int | None, ...] = (None, 28, 14)  # None: full resolution
TOP_FRACTION = 0.10
METRIC_CHUNK = 8  # maps scored per batched metric call (bounded memory, progress saved often)


def step_pixels(height: int, width: int) -> int:
    """One curve step: round(1 % of the pixels), at least 1."""
    return max(1, int(round(STEP_FRACTION * height * width)))


def protocol(height: int, width: int) -> dict[str, Any]:
    """Everything that decides the curve metrics' values (stored with them; a change recomputes)."""
    step = step_pixels(height, width)
    return {
        "version": PROTOCOL_VERSION,
        "shape": [height, width],
        "score": "softmax probability of the class predicted on x",
        "ranking": "signed channel mean, descending",
        "aopc": {
            "replacement": f"blur({AOPC_BLUR[0]},{AOPC_BLUR[1]})",
            "stride": step,
            "aggregate": "curves",
        },
        "insertion": {"substrate": f"blur({INSERTION_BLUR[0]},{INSERTION_BLUR[1]})", "step": step},
        "deletion": {"substrate": "zero", "step": step},
    }


def scale_name(scale: int | None) -> str:
    return "pixel" if scale is None else f"{scale}x{scale}"


@dataclass(frozen=True)
class Photo:
    """One explicand with what every metric of it needs, computed once."""

    x: np.ndarray  # (C, H, W) float32 in [0, 1]
    target: int  # the model's top class on x
    score: float  # its softmax probability
    replacement: np.ndarray  # (C, H, W) blur(x, 31, 5): the AOPC's deleted values
    substrate: np.ndarray  # (C, H, W) blur(x, 11, 5): insertion's start

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.x.shape[-2]), int(self.x.shape[-1])


def prepare_photo(model: QueryModel, x: np.ndarray) -> Photo:
    """The target (one query) and the two blurred images of one photo."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    targets, scores = predict(model, x[None])
    return Photo(
        x=x,
        target=int(targets[0]),
        score=float(scores[0]),
        replacement=blur(x, *AOPC_BLUR),
        substrate=blur(x, *INSERTION_BLUR),
    )


def curve_metrics(model: QueryModel, photo: Photo, maps: np.ndarray) -> list[dict[str, Any]]:
    """AOPC (curve and per-photo value), insertion AUC and deletion AUC of each of ``maps`` (B, H, W).

    The B maps are scored together: the photo repeated B times, one batched call per metric.
    """
    maps = np.asarray(maps, dtype=np.float64)
    b = len(maps)
    h, w = photo.shape
    step = step_pixels(h, w)
    xb = np.broadcast_to(photo.x, (b, *photo.x.shape))
    a = maps[:, None]  # (B, 1, H, W): one-channel maps broadcast over the channels
    t = np.full(b, photo.target, dtype=np.int64)
    aopc = aopc_deletion(
        model, xb, a, target=t, replacement=photo.replacement, stride=step, aggregate="curves"
    )
    ins = insertion_auc(model, xb, a, target=t, step=step, substrate=photo.substrate)
    dele = deletion_auc(model, xb, a, target=t, step=step, substrate="zero")
    assert aopc.curves is not None and aopc.per_image is not None
    assert ins.per_image is not None and dele.per_image is not None
    per_map = (aopc.n_queries + ins.n_queries + dele.n_queries) // b
    return [
        {
            "aopc": float(aopc.per_image[i]),
            "aopc_curve": aopc.curves[i].tolist(),
            "insertion": float(ins.per_image[i]),
            "deletion": float(dele.per_image[i]),
            "metric_queries": int(per_map),
        }
        for i in range(b)
    ]


def pool(saliency: np.ndarray, size: int) -> np.ndarray:
    """Adaptive average pooling of an (H, W) map to (size, size) (``adaptive_avg_pool2d``'s bins)."""
    m = np.asarray(saliency, dtype=np.float64)
    return _pool_matrix(m.shape[0], size) @ m @ _pool_matrix(m.shape[1], size).T


def _pool_matrix(n: int, size: int) -> np.ndarray:
    """(size, n) averaging matrix: row i averages indices ⌊i·n/size⌋ … ⌈(i+1)·n/size⌉ − 1."""
    i = np.arange(size)[:, None]
    j = np.arange(n)[None, :]
    inside = (j >= (i * n) // size) & (j < -(-((i + 1) * n) // size))
    return inside / inside.sum(axis=1, keepdims=True)


def agreement_scales(saliency: np.ndarray, reference: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Spearman, top-10 % intersection and cosine with the reference at each scale it fits.

    A scale not smaller than the map (e.g. 28×28 on a 16×16 test image) is left out; an undefined
    value (a constant map) is None.
    """
    out: dict[str, dict[str, float | None]] = {}
    h, w = saliency.shape
    for scale in AGREEMENT_SCALES:
        if scale is not None and scale >= min(h, w):
            continue
        a, r = (saliency, reference) if scale is None else (pool(saliency, scale), pool(reference, scale))
        res = agreement(a, r, fractions=(TOP_FRACTION,))
        out[scale_name(scale)] = {
            "spearman": _finite(res["spearman"].score),
            "top10": _finite(res[f"top{100 * TOP_FRACTION:g}%"].score),
            "cosine": _finite(res["cosine"].score),
        }
    return out


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
