"""Detection boxes drawn on pictures: the explained detection on its map's overlay (Pillow only).

:func:`draw_boxes` takes PNG bytes or an RGB uint8 (H, W, 3) array and returns the same kind;
:func:`detection_overlay` is the picture ``onnxplain explain --task detect`` writes: the map's
overlay (:func:`~onnxplain.report.heatmap.overlay`) enlarged for display, with the target's box
and label on it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from onnxplain.errors import InvalidInputError
from onnxplain.report.heatmap import display_factor, encode_png, overlay, upscale

BOX_COLOUR = (0, 200, 0)
"""Green: far from both ends of the diverging map's colours (red and blue)."""
TEXT_COLOUR = (255, 255, 255)


def _to_rgb(picture: bytes | np.ndarray) -> np.ndarray:
    if isinstance(picture, (bytes, bytearray)):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(picture)) as img:
                return np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise InvalidInputError(f"the picture is not a readable image ({type(exc).__name__}).") from exc
    rgb = np.asarray(picture)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidInputError(f"expected PNG bytes or an RGB uint8 (H, W, 3) array, got {rgb.dtype} {rgb.shape}.")
    return rgb


def draw_boxes(
    picture: bytes | np.ndarray,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str] | None = None,
    *,
    scale: float = 1.0,
    colour: tuple[int, int, int] = BOX_COLOUR,
    width: int | None = None,
) -> bytes | np.ndarray:
    """``picture`` with xyxy ``boxes`` (in the picture's pixels ÷ ``scale``) outlined and labelled.

    Args:
        picture: PNG bytes or RGB uint8 (H, W, 3); the result is of the same kind.
        boxes: (n, 4) x1, y1, x2, y2; multiplied by ``scale`` (e.g. the overlay's display factor).
        labels: one text per box (e.g. ``"person 0.91"``), drawn on a filled tab above the box
            (inside it when the box touches the top edge).
        width: line width in pixels (default: 1 per 200 pixels of the larger side, at least 2).
    """
    from PIL import Image, ImageDraw, ImageFont

    rgb = _to_rgb(picture)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * float(scale)
    if labels is not None and len(labels) != len(b):
        raise InvalidInputError(f"{len(b)} boxes but {len(labels)} labels.")
    if not np.isfinite(b).all():
        raise InvalidInputError("box coordinates must be finite.")
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    line = width or max(2, max(rgb.shape[:2]) // 200)
    font = ImageFont.load_default()
    for i, (x1, y1, x2, y2) in enumerate(b):  # one rectangle per box
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line)
        if labels is None:
            continue
        left, top, right, bottom = draw.textbbox((0, 0), labels[i], font=font)
        tw, th = right - left + 4, bottom - top + 4
        ty = y1 - th if y1 - th >= 0 else y1
        draw.rectangle([x1, ty, x1 + tw, ty + th], fill=colour)
        draw.text((x1 + 2 - left, ty + 2 - top), labels[i], fill=TEXT_COLOUR, font=font)
    out = np.asarray(img)
    return encode_png(out) if isinstance(picture, (bytes, bytearray)) else out


def detection_overlay(
    explicand: np.ndarray,
    saliency: np.ndarray,
    boxes: Sequence[Sequence[float]] | np.ndarray,
    labels: Sequence[str] | None = None,
    scale: float | None = None,
    *,
    centre: bool = False,
) -> np.ndarray:
    """The map's overlay on the explicand, enlarged to about 224 pixels when smaller, with
    ``boxes`` (explicand pixels) drawn: RGB uint8.

    ``centre=True`` subtracts the map's mean first: RISE / D-RISE maps are expected scores (all
    ≥ 0), so uncentred they colour the whole picture; centred they show where the score is above
    its average (the D-RISE fusion of microsoft/vision-explanation-methods subtracts the same
    mean(w)·ΣM_i term).
    """
    s = np.asarray(saliency, dtype=np.float64)
    rgb = overlay(explicand, s - s.mean() if centre else s, scale)
    factor = display_factor(*rgb.shape[:2])
    return draw_boxes(upscale(rgb, factor), boxes, labels, scale=factor)  # type: ignore[return-value]
