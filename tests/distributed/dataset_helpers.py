"""Helpers of the dataset-runner tests: the twelve test images and the in-process oracle."""

from __future__ import annotations

import numpy as np

from onnxplain.blackbox.geex import GEEX
from onnxplain.demo import demo_onnx_path, load_demo_digits
from onnxplain.distributed import image_seed
from onnxplain.models.onnx import OnnxModel

SEED = 7


def twelve_digits() -> np.ndarray:
    """Twelve [0,1] digits (1, 28, 28): the ten demo digits and two mirrored ones."""
    x = load_demo_digits()[0]
    return np.ascontiguousarray(np.concatenate([x, x[:2, :, :, ::-1]]), dtype=np.float32)


def oracle(images: np.ndarray, ids: list[str], n_queries: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """GEEX in this process, built by hand: the model once, one explainer per image with its seed."""
    model = OnnxModel(demo_onnx_path(), device="cpu", batch_size=32)
    return {
        i: GEEX(n_queries=n_queries, seed=image_seed(seed, i)).explain(model, x).attributions
        for i, x in zip(ids, images, strict=True)
    }
