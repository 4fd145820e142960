"""Bring image files into a model's explicand space: float32 (C,H,W) pixels in [0,1].

PNG/JPEG (anything Pillow reads) is converted to the model's channel count (1 → grey ``L``,
3 → ``RGB``, 4 → ``RGBA``), resized to the model's H×W and scaled to [0,1]. A ``.npy`` file is
taken as already being in the model's input space and must have exactly its shape (a leading
batch axis of 1 is accepted).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from onnxplain.errors import InvalidInputError

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
# Pillow reads 16/32-bit greyscale into these integer modes; their full scale is 2**16 - 1.
_WIDE_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InvalidInputError(f"image file {str(path)!r} does not exist.")
    if not path.is_file():
        raise InvalidInputError(f"image path {str(path)!r} is not a file.")
    if not os.access(path, os.R_OK):
        raise InvalidInputError(f"image file {str(path)!r} is not readable (permission denied).")


def _check_image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3:
        raise InvalidInputError(
            f"the model's input shape {shape} is not an image (C, H, W); give .npy arrays of that shape instead."
        )
    if shape[0] not in _MODES:
        raise InvalidInputError(
            f"the model takes {shape[0]} channels; image files can only be converted to 1, 3 or 4 channels "
            "(give .npy arrays in the model's input space instead)."
        )
    return shape  # type: ignore[return-value]


def load_npy(path: str | os.PathLike[str], input_shape: Sequence[int]) -> np.ndarray:
    """A ``.npy`` array already in the model's input space, as float32 of shape ``input_shape``."""
    path = Path(path)
    _check_readable(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"{str(path)!r} is not a readable .npy array ({exc}).") from exc
    if not isinstance(arr, np.ndarray) or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise InvalidInputError(f"{str(path)!r} does not hold a numeric array.")
    shape = tuple(int(d) for d in input_shape)
    if arr.shape != shape and arr.shape != (1, *shape):
        raise InvalidInputError(
            f"array {str(path)!r} has shape {arr.shape}; the model's input shape is {shape} "
            "(.npy files must already be in the model's input space)."
        )
    arr = arr.reshape(shape).astype(np.float32)
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"array {str(path)!r} holds NaN or infinite values.")
    return arr


def load_picture(path: str | os.PathLike[str], input_shape: Sequence[int]) -> np.ndarray:
    """A PNG/JPEG (or other Pillow-readable) file as float32 (C,H,W) in [0,1], resized to the model."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _check_readable(path)
    channels, height, width = _check_image_shape(input_shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                picture = img.copy()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInputError(f"{str(path)!r} is not an image Pillow can read ({type(exc).__name__}).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(f"{str(path)!r} is a damaged or unsupported image ({exc}).") from exc

    if picture.mode in _WIDE_MODES and channels == 1:
        arr = np.asarray(picture, dtype=np.float64)
        full = 65535.0 if picture.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        resized = Image.fromarray((arr / full).astype(np.float32), mode="F")
        resized = resized.resize((width, height), Image.Resampling.BILINEAR) if resized.size != (width, height) else resized
        out = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)[None]
        return np.ascontiguousarray(out)

    if picture.mode == "P" and "transparency" in picture.info:
        picture = picture.convert("RGBA")
    if picture.mode in ("RGBA", "LA", "PA") and channels != 4:
        # Composite transparent pixels on black, the zero of [0,1] pixel space.
        background = Image.new("RGBA", picture.size, (0, 0, 0, 255))
        picture = Image.alpha_composite(background, picture.convert("RGBA"))
    picture = picture.convert(_MODES[channels])
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=3.0)
    arr = np.asarray(picture, dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr, dtype=np.float32)


def load_image(path: str | os.PathLike[str], input_shape: Sequence[int]) -> np.ndarray:
    """Load one explicand for a model taking ``input_shape`` (``.npy`` as is, pictures converted)."""
    if Path(path).suffix.lower() == ".npy":
        return load_npy(path, input_shape)
    return load_picture(path, input_shape)


def load_images(paths: Sequence[str | os.PathLike[str]], input_shape: Sequence[int]) -> np.ndarray:
    """Load several explicands into one float32 batch (B, *input_shape); fails on the first bad file."""
    if not paths:
        raise InvalidInputError("no image files were given.")
    return np.stack([load_image(p, input_shape) for p in paths])
