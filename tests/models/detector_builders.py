"""Test-sized detectors: a hand-set torch net exported to ONNX in YOLOv8's output format, and
the pictures it fires on. No download, a second to build."""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np

SIDE = 64
STRIDE = 16
CELLS = SIDE // STRIDE
NAMES = {0: "square", 1: "other"}
SQUARE_MODEL = (16, 16, 32, 32)
"""The bright square's box in the model input (x1, y1, x2, y2): exactly grid cell (1, 1)."""


@functools.lru_cache(maxsize=4)  # exported once per process and flags (bytes are immutable)
def square_detector_onnx(*, fixed_batch: bool = False, metadata: bool = True) -> bytes:
    """A YOLOv8-format detector (N, 4 + 2, 16) hand-set to find bright squares.

    The 64×64 input is cut into a 4×4 grid of 16-pixel cells. Cell j proposes the box of the
    cell itself (cx, cy at its centre, w = h = 16) with class scores
    ``P_j = (σ(20·(b_j − 0.6)), 0.01)`` where b_j is the cell's mean brightness: a bright
    aligned square fires class 0 ("square") in its cell and nowhere else; class 1 never fires.
    Ultralytics' metadata (``task``, ``names``, ``imgsz``, ``stride``) is written unless
    ``metadata=False``.
    """
    import onnx
    import torch

    class SquareNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            centres = (torch.arange(CELLS, dtype=torch.float32) + 0.5) * STRIDE
            cy, cx = torch.meshgrid(centres, centres, indexing="ij")
            size = torch.full((CELLS, CELLS), float(STRIDE))
            self.register_buffer("boxes", torch.stack([cx, cy, size, size]).reshape(1, 4, CELLS * CELLS))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            bright = torch.nn.functional.avg_pool2d(x.mean(dim=1, keepdim=True), STRIDE)  # (N, 1, 4, 4)
            square = torch.sigmoid(20.0 * (bright - 0.6)).flatten(2)  # (N, 1, 16)
            other = torch.full_like(square, 0.01)
            boxes = self.boxes.expand(x.shape[0], -1, -1)
            return torch.cat([boxes, square, other], dim=1)  # (N, 6, 16)

    buffer = io.BytesIO()
    axes = None if fixed_batch else {"images": {0: "batch"}, "output0": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SquareNet().eval(), (torch.rand(1, 3, SIDE, SIDE),), buffer, dynamo=False,
            input_names=["images"], output_names=["output0"], dynamic_axes=axes, opset_version=17,
        )  # fmt: skip
    proto = onnx.load_model_from_string(buffer.getvalue())
    if metadata:
        for key, value in {"task": "detect", "names": repr(NAMES), "imgsz": f"[{SIDE}, {SIDE}]", "stride": "16"}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    return proto.SerializeToString()


def square_photo(seed: int = 0) -> np.ndarray:
    """A (3, 64, 48) photo: dim texture in [0.1, 0.3] and a white 16×16 square at content
    columns 8..24, rows 16..32, i.e. model cell (1, 1) once letterboxed (8 pixels of pad each side)."""
    rng = np.random.default_rng(seed)
    img = rng.uniform(0.1, 0.3, size=(3, SIDE, 48)).astype(np.float32)
    img[:, 16:32, 8:24] = 1.0
    return img


SQUARE_CONTENT = (8, 16, 24, 32)
"""The square's box in the photo / explicand (x1, y1, x2, y2)."""
