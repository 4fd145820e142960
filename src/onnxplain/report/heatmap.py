"""Attribution maps as pictures: heatmaps, overlays on the explicand, PNG encoding (Pillow only).

A signed map ``s`` is shown through the diverging colormap as ``cmap(s / scale)`` with a symmetric
scale, so white always means 0 and equal colours mean equal values wherever one scale is shared
(several methods on one row of the report). The scale is a high percentile of ``|s|`` rather than
the maximum, so that one extreme pixel does not wash out the rest; values beyond it saturate.

:func:`map_picture` is the one rendering of a method's map: the PNG overlays of ``onnxplain
explain`` and the pictures of the HTML report both come from it, so a map looks the same
everywhere. A map that is all-positive by construction (RISE's expected score, Sobol's and HSIC's indices: their
classes declare ``signed_map = False``, :func:`onnxplain.registry.is_signed`) is shown minus its mean: otherwise it would be uniformly
red, its offset f(x) drowning the modulation that carries the explanation.
"""

from __future__ import annotations

import base64
import io
import math
import os
from collections.abc import Iterable

import numpy as np

from onnxplain._io import atomic_write
from onnxplain.errors import InvalidInputError
from onnxplain.report.colormaps import DIVERGING, Colormap

DEFAULT_PERCENTILE = 99.5
DISPLAY_SIDE = 224


def robust_scale(maps: Iterable[np.ndarray], percentile: float = DEFAULT_PERCENTILE) -> float:
    """The largest ``percentile``-th percentile of ``|map|`` over ``maps`` (> 0; 1.0 if all are zero).

    Non-finite values are ignored. Used as the shared ±scale of one row of maps.
    """
    best = 0.0
    for m in maps:
        a = np.abs(np.asarray(m, dtype=np.float64))
        a = a[np.isfinite(a)]
        if a.size:
            best = max(best, float(np.percentile(a, percentile)))
            if best == 0.0:
                best = max(best, float(a.max()))
    return best if best > 0 and math.isfinite(best) else 1.0


def heatmap(saliency: np.ndarray, scale: float | None = None, cmap: Colormap = DIVERGING) -> np.ndarray:
    """RGB uint8 (H,W,3) of a (H,W) map; ``scale`` maps ±scale to the colormap's ends (default robust)."""
    s = np.asarray(saliency, dtype=np.float64)
    if s.ndim != 2:
        raise InvalidInputError(f"a heatmap needs a (H, W) map, got shape {s.shape}.")
    scale = robust_scale([s]) if scale is None else float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise InvalidInputError(f"heatmap scale must be positive and finite, got {scale}.")
    if cmap.vmin < 0:
        return cmap(s / scale)
    return cmap(np.abs(s) / scale)


def image_rgb(image: np.ndarray) -> np.ndarray:
    """An explicand (C,H,W) in [0,1] as RGB uint8 (H,W,3): grey for 1 channel, the channel mean for others."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise InvalidInputError(f"an image must be (C, H, W), got shape {x.shape}.")
    if x.shape[0] == 3:
        rgb = x.transpose(1, 2, 0)
    elif x.shape[0] == 4:
        rgb = x[:3].transpose(1, 2, 0)
    else:
        rgb = np.repeat(x.mean(axis=0)[..., None], 3, axis=-1)
    rgb = np.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def overlay(
    image: np.ndarray,
    saliency: np.ndarray,
    scale: float | None = None,
    *,
    alpha: float = 0.9,
    cmap: Colormap = DIVERGING,
) -> np.ndarray:
    """The heatmap blended over a dimmed grey copy of the explicand, RGB uint8 (H,W,3).

    Each pixel's blend weight is ``alpha * min(1, |s| / scale)``: where the map is 0 the image
    shows through, where it saturates the colour dominates.
    """
    s = np.asarray(saliency, dtype=np.float64)
    base = image_rgb(image).astype(np.float64)
    if base.shape[:2] != s.shape:
        raise InvalidInputError(f"map shape {s.shape} does not match image shape {base.shape[:2]}.")
    scale = robust_scale([s]) if scale is None else float(scale)
    heat = heatmap(s, scale, cmap).astype(np.float64)
    grey = base.mean(axis=-1, keepdims=True) * 0.6 + 0.4 * 255 * 0.5
    weight = alpha * np.clip(np.nan_to_num(np.abs(s) / scale), 0.0, 1.0)[..., None]
    return np.rint((1 - weight) * grey + weight * heat).astype(np.uint8)


def display_factor(height: int, width: int, side: int = DISPLAY_SIDE) -> int:
    """Integer nearest-neighbour factor that brings a small image up to about ``side`` pixels."""
    return max(1, side // max(height, width, 1))


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement (keeps pixels crisp: a 28×28 digit stays readable)."""
    if factor <= 1:
        return rgb
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def colorbar(cmap: Colormap = DIVERGING, width: int = 256, height: int = 14) -> np.ndarray:
    """A horizontal colour bar from ``cmap.vmin`` (left) to ``cmap.vmax`` (right), RGB uint8."""
    row = cmap(np.linspace(cmap.vmin, cmap.vmax, width))
    return np.repeat(row[None], height, axis=0)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 (H,W,3) or grey (H,W) array."""
    from PIL import Image

    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InvalidInputError(f"PNG encoding needs uint8 (H, W) or (H, W, 3), got {arr.dtype} {arr.shape}.")
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding a PNG in HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def save_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write a PNG atomically (temp file + rename)."""
    png = encode_png(rgb)
    with atomic_write(path) as handle:
        handle.write(png)


def overlay_png(image: np.ndarray, saliency: np.ndarray, scale: float | None = None) -> bytes:
    """The overlay of one map on its explicand, enlarged for display, as PNG bytes."""
    rgb = overlay(image, saliency, scale)
    return encode_png(upscale(rgb, display_factor(*rgb.shape[:2])))


def centred_map(saliency: np.ndarray, *, signed: bool = True) -> tuple[np.ndarray, float, str]:
    """What the picture of a map shows: ``(map, its own ±scale, caption note)``.

    A signed map is shown as it is; an unsigned one (``signed=False``) minus its mean over the
    finite pixels (the ranking, and so every metric, is unchanged). The scale is
    :func:`robust_scale` of what is shown (the 99.5th percentile of its magnitude): each map has
    its own, because methods differ in units (GEEX and IG split f(x) − f(x̂) over the pixels,
    LIME paints a coefficient per segment, SmoothGrad is a gradient).
    """
    shown = np.asarray(saliency, dtype=np.float64)
    note = ""
    if not signed:
        finite = np.isfinite(shown)
        offset = float(np.mean(shown[finite])) if finite.any() else 0.0
        shown = shown - offset
        note = f"shown minus its mean {offset:.3g}; "
    scale = robust_scale([shown])
    return shown, scale, f"{note}scale ±{scale:.3g}"


def map_picture(
    image: np.ndarray, saliency: np.ndarray, method: str, *, side: int = DISPLAY_SIDE
) -> tuple[np.ndarray, str]:
    """The picture of ``method``'s (H,W) map over its explicand: RGB uint8 enlarged to about
    ``side`` pixels, and its caption note (scale, offset). Used by the CLI and the report alike."""
    from onnxplain.registry import is_signed

    shown, scale, note = centred_map(saliency, signed=is_signed(method))
    rgb = overlay(image, shown, scale)
    return upscale(rgb, display_factor(*rgb.shape[:2], side=side)), note
