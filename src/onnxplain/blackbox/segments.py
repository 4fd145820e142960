"""Superpixels for the explainers that perturb whole segments (LIME, KernelSHAP), defined once.

A :class:`Segmenter` turns one (C,H,W) explicand into integer labels (H,W) in 0..K−1:

- ``"quickshift"``: scikit-image quickshift (kernel 4, max_dist 200, ratio 0.2, the ``lime``
  package's default) on the image scaled to [0,1], for colour images;
- ``"slic"``: scikit-image SLIC with ``n_segments`` (compactness 10 in colour, 0.1 in grey);
- ``"grid"``: a regular ``cells × cells`` grid (the safe choice for small or greyscale images);
- an integer label array (H,W), or (B,H,W) with one map per explicand, relabelled to 0..K−1;
- ``"auto"``: the method's colour choice (LIME: quickshift, KernelSHAP: SLIC) for colour images
  with both sides ≥ 64 pixels, else the grid; also the grid where the colour segmentation finds
  fewer than 2 superpixels (a flat image; the segment count used is in the diagnostics).

The choice actually made is recorded through :meth:`Segmenter.describe`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.checks import check_choice
from onnxplain.errors import InvalidInputError

QUICKSHIFT = {"kernel_size": 4, "max_dist": 200, "ratio": 0.2}
QUICKSHIFT_MIN_SIDE = 64
KINDS: tuple[str, ...] = ("auto", "quickshift", "slic", "grid")


def relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Map any integer label array to 0..K−1 (order of first sorted value); returns (labels, K)."""
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int64), len(values)


def grid_segments(height: int, width: int, cells: int) -> np.ndarray:
    """A regular ``cells × cells`` grid of (nearly) equal rectangles, labelled row-major."""
    rows = np.minimum(np.arange(height) * cells // height, cells - 1)
    cols = np.minimum(np.arange(width) * cells // width, cells - 1)
    return rows[:, None] * cells + cols[None, :]


def check_segmentation(segmentation: Any) -> str | np.ndarray:
    """A segmentation name of :data:`KINDS` or an integer label array (H,W) / (B,H,W)."""
    if isinstance(segmentation, str):
        return check_choice("segmentation", segmentation, KINDS)
    labels = np.asarray(segmentation)
    if labels.ndim not in (2, 3) or not np.issubdtype(labels.dtype, np.integer):
        raise InvalidInputError(
            "segmentation must be 'auto', 'quickshift', 'slic', 'grid' or an integer label "
            f"array of shape (H,W) or (B,H,W), got {labels.dtype} of shape {labels.shape}."
        )
    return labels


@dataclass(frozen=True, eq=False)
class Segmenter:
    """One method's superpixel settings (validated once, in the method's constructor).

    ``n_segments`` sets the grid's cell count (rounded to a square) or SLIC's target count;
    ``None`` uses ``grid_cells`` × ``grid_cells`` and ``slic_segments``. ``seed`` seeds quickshift.
    """

    segmentation: str | np.ndarray
    n_segments: int | None = None
    seed: int = 0
    auto_colour: str = "quickshift"
    grid_cells: int = 7
    slic_segments: int = 50

    def kind(self, c: int, h: int, w: int) -> str:
        """``"labels"``, ``"quickshift"``, ``"slic"`` or ``"grid"`` for (C,H,W) images."""
        if not isinstance(self.segmentation, str):
            return "labels"
        if self.segmentation != "auto":
            return self.segmentation
        return self.auto_colour if c == 3 and min(h, w) >= QUICKSHIFT_MIN_SIDE else "grid"

    def cells(self) -> int:
        return self.grid_cells if self.n_segments is None else max(1, round(self.n_segments**0.5))

    def describe(self, c: int, h: int, w: int) -> str:
        """The segmentation actually used for (C,H,W) images, as recorded in ``params``."""
        kind = self.kind(c, h, w)
        if kind == "quickshift":
            return "quickshift(kernel_size=4, max_dist=200, ratio=0.2)"
        if kind == "grid":
            cells = min(self.cells(), h, w)
            return f"grid({cells}x{cells})"
        if kind == "slic":
            return f"slic(n_segments={self.n_segments or self.slic_segments})"
        return "labels"

    def segment(self, image: np.ndarray, index: int = 0) -> tuple[np.ndarray, int]:
        """Superpixels of one (C,H,W) explicand (number ``index`` of its batch): labels (H,W) in
        0..K−1 and K."""
        c, h, w = image.shape
        kind = self.kind(c, h, w)
        if kind == "labels":
            return self._given(h, w, index)
        if kind == "grid":
            return self._grid(h, w)
        labels, k = self._superpixels(image, kind)
        if k < 2 and self.segmentation == "auto":  # e.g. a flat image: no superpixel boundaries
            return self._grid(h, w)
        return labels, k

    def _grid(self, h: int, w: int) -> tuple[np.ndarray, int]:
        return relabel(grid_segments(h, w, min(self.cells(), h, w)))

    def _superpixels(self, image: np.ndarray, kind: str) -> tuple[np.ndarray, int]:
        """Quickshift or SLIC labels of one (C,H,W) image, relabelled to 0..K−1, and K."""
        from skimage import segmentation as sk

        c = image.shape[0]

        hwc = np.moveaxis(image, 0, -1).astype(np.float64)
        lo, hi = float(hwc.min()), float(hwc.max())
        if lo < 0.0 or hi > 1.0:  # colour conversion expects [0,1]; scale models in other units
            hwc = (hwc - lo) / (hi - lo) if hi > lo else np.zeros_like(hwc)
        if kind == "quickshift":
            if c != 3:
                raise InvalidInputError(f"quickshift segments colour images (3 channels), not {c}-channel ones.")
            labels = sk.quickshift(hwc, **QUICKSHIFT, rng=self.seed)
        else:
            labels = sk.slic(
                hwc if c == 3 else hwc.mean(axis=-1),
                n_segments=self.n_segments or self.slic_segments,
                compactness=10.0 if c == 3 else 0.1,
                start_label=0,
                channel_axis=-1 if c == 3 else None,
            )
        return relabel(labels)

    def _given(self, h: int, w: int, index: int) -> tuple[np.ndarray, int]:
        labels = self.segmentation
        assert isinstance(labels, np.ndarray)
        if labels.ndim == 3:
            if index >= len(labels):
                raise InvalidInputError(f"the label array holds {len(labels)} maps but explicand {index} needs one.")
            labels = labels[index]
        if labels.shape != (h, w):
            raise InvalidInputError(f"the label array has shape {labels.shape} but the images are {h}×{w}.")
        return relabel(labels)


def groups_of_equal(keys: Any) -> list[list[int]]:
    """Indices grouped by equal key (arrays compare by shape and content), in first-seen order:
    explicands that share a segmentation share its pixel masks."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        if isinstance(key, np.ndarray):
            key = (key.shape, key.dtype.str, hashlib.sha256(np.ascontiguousarray(key).tobytes()).digest())
        groups.setdefault(key, []).append(i)
    return list(groups.values())
