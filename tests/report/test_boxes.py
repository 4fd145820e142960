"""Detection boxes on pictures: where the outline lands, labels, PNG in and out, bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from onnxplain.errors import InvalidInputError
from onnxplain.report.boxes import BOX_COLOUR, detection_overlay, draw_boxes
from onnxplain.report.heatmap import encode_png


def test_outline_is_drawn_on_the_box_edges_only() -> None:
    rgb = np.full((40, 60, 3), 128, np.uint8)
    out = draw_boxes(rgb, [(10, 5, 30, 25)], width=2)
    assert isinstance(out, np.ndarray) and out.shape == rgb.shape
    assert tuple(out[5, 20]) == BOX_COLOUR and tuple(out[15, 10]) == BOX_COLOUR  # top and left edges
    assert tuple(out[15, 20]) == (128, 128, 128)  # inside untouched
    assert tuple(out[35, 50]) == (128, 128, 128)  # outside untouched
    assert (rgb == 128).all()  # the input is not modified


def test_labels_scale_and_png_round_trip() -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    png = draw_boxes(encode_png(rgb), [(2, 20, 8, 30)], ["face 0.83"], scale=2.0)
    assert isinstance(png, bytes)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert tuple(img[40, 4]) == BOX_COLOUR  # (2, 20) scaled by 2
    assert (img[:40, 4:30] != 0).any()  # the label's tab sits above the box


def test_detection_overlay_is_enlarged_with_the_box() -> None:
    x = np.random.default_rng(0).random((3, 32, 24)).astype(np.float32)
    s = np.zeros((32, 24))
    s[8:16, 8:16] = 1.0
    out = detection_overlay(x, s, [(8, 8, 16, 16)], ["thing 0.90"])
    assert out.shape == (224, 168, 3)  # factor 7 = 224 // 32
    flat = detection_overlay(x, s + 5.0, [(8, 8, 16, 16)], centre=True)  # an offset map, centred
    np.testing.assert_array_equal(flat, detection_overlay(x, s - s.mean(), [(8, 8, 16, 16)]))


def test_bad_input_is_refused() -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(InvalidInputError):
        draw_boxes(rgb, [(0, 0, 4, 4)], ["a", "b"])
    with pytest.raises(InvalidInputError):
        draw_boxes(np.zeros((8, 8)), [(0, 0, 4, 4)])
    with pytest.raises(InvalidInputError):
        draw_boxes(b"not a png", [(0, 0, 4, 4)])
    with pytest.raises(InvalidInputError):
        draw_boxes(rgb, [(0, 0, np.nan, 4)])
