"""Localisation checks for a map whose object box is known (a detection, an annotation).

* **Pointing game** (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016):
  a hit when the map's maximum falls inside the box, grown by ``tolerance`` pixels (the paper
  uses 15 pixels at ImageNet/COCO scale; 0 here by default).
* **Positive share in the box** (the "energy-based pointing game" of Score-CAM, Wang et al.
  2020): Σ_{p ∈ box} max(s_p, 0) / Σ_p max(s_p, 0): the share of the positive attribution that
  lies inside the box.

Both read the (H, W) saliency (an Explanation's ``saliency()``, a (C, H, W) map's channel mean,
or an (H, W) map) and an xyxy box in the same pixels; neither queries the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError
from onnxplain.explanation import Explanation


def _saliency(attributions: Any) -> np.ndarray:
    if isinstance(attributions, Explanation):
        if attributions.is_batch:
            raise InvalidInputError("pass one explanation (explanation[i]), not a batch.")
        return attributions.saliency()
    s = np.asarray(attributions, dtype=np.float64)
    if s.ndim == 3:
        s = s.mean(axis=0)
    if s.ndim != 2 or not np.isfinite(s).all():
        raise InvalidInputError(f"expected a finite (H, W) or (C, H, W) map, got shape {s.shape}.")
    return s


def box_mask(shape: tuple[int, int], box: Sequence[float], tolerance: float = 0.0) -> np.ndarray:
    """(H, W) bool: pixels whose centre (x + ½, y + ½) lies in the xyxy ``box`` grown by ``tolerance``."""
    if len(box) != 4:
        raise InvalidInputError(f"a box is (x1, y1, x2, y2), got {box!r}.")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1 or y2 < y1:
        raise InvalidInputError(f"box {box!r} has x2 < x1 or y2 < y1.")
    ys = np.arange(shape[0]) + 0.5
    xs = np.arange(shape[1]) + 0.5
    rows = (ys >= y1 - tolerance) & (ys <= y2 + tolerance)
    cols = (xs >= x1 - tolerance) & (xs <= x2 + tolerance)
    return rows[:, None] & cols[None, :]


def pointing_game(attributions: Any, box: Sequence[float], *, tolerance: float = 0.0) -> bool:
    """Whether the map's maximum (the first one, row-major, on ties) lies in ``box`` ± ``tolerance``."""
    s = _saliency(attributions)
    y, x = np.unravel_index(int(np.argmax(s)), s.shape)
    return bool(box_mask(s.shape, box, tolerance)[y, x])


def positive_share_in_box(attributions: Any, box: Sequence[float]) -> float:
    """Σ_{p ∈ box} max(s_p, 0) / Σ_p max(s_p, 0) (0 for a map without positive values)."""
    s = np.clip(_saliency(attributions), 0.0, None)
    total = float(s.sum())
    return float(s[box_mask(s.shape, box)].sum() / total) if total > 0 else 0.0
