"""Colormaps, heatmaps, overlays, PNG encoding and SVG curves: properties that make the pictures honest."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from onnxplain.errors import InvalidInputError
from onnxplain.report.colormaps import DIVERGING, SEQUENTIAL, text_color_on
from onnxplain.report.curves import Series, line_plot_svg
from onnxplain.report.heatmap import (
    colorbar,
    display_factor,
    encode_png,
    heatmap,
    image_rgb,
    overlay,
    robust_scale,
    upscale,
)


def _lightness(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ np.array([0.2126, 0.7152, 0.0722])


def test_diverging_is_white_at_zero_blue_below_red_above():
    rgb = DIVERGING(np.array([-1.0, 0.0, 1.0])).astype(int)
    neg, zero, pos = rgb
    assert zero.min() >= 240  # near white
    assert neg[2] > neg[0] + 80  # blue dominates
    assert pos[0] > pos[2] + 80  # red dominates


def test_diverging_lightness_is_monotone_on_each_side():
    v = np.linspace(0, 1, 101)
    light_pos = _lightness(DIVERGING(v))
    light_neg = _lightness(DIVERGING(-v))
    assert np.all(np.diff(light_pos) <= 1e-9)
    assert np.all(np.diff(light_neg) <= 1e-9)
    assert np.all(np.diff(_lightness(SEQUENTIAL(v))) >= -1e-9)


def test_colormap_clips_and_marks_nan_grey():
    rgb = DIVERGING(np.array([-5.0, 5.0, np.nan, np.inf]))
    assert np.array_equal(rgb[0], DIVERGING(np.array([-1.0]))[0])
    assert np.array_equal(rgb[1], DIVERGING(np.array([1.0]))[0])
    assert np.array_equal(rgb[2], [128, 128, 128])
    assert np.array_equal(rgb[3], [128, 128, 128])


def test_text_colour_contrasts_with_background():
    assert text_color_on((250, 250, 250)) == "#000"
    assert text_color_on((20, 20, 80)) == "#fff"


def test_heatmap_shares_one_scale_and_keeps_sign():
    a = np.array([[0.5, -0.5], [0.0, 2.0]])
    b = np.array([[0.5, 0.1], [0.0, 0.0]])
    scale = robust_scale([a, b], percentile=100)
    assert scale == 2.0
    ha, hb = heatmap(a, scale), heatmap(b, scale)
    assert np.array_equal(ha[0, 0], hb[0, 0])  # equal values, equal colours across maps
    assert ha[0, 0, 0] > ha[0, 0, 2] and ha[0, 1, 2] > ha[0, 1, 0]  # + red, − blue
    assert ha[0, 0].min() > ha[1, 1].min()  # larger magnitude is more saturated


def test_robust_scale_of_zero_or_empty_maps_is_one():
    assert robust_scale([np.zeros((4, 4))]) == 1.0
    assert robust_scale([]) == 1.0
    assert robust_scale([np.full((3, 3), np.nan)]) == 1.0
    # a single non-zero pixel among zeros still gives a usable (non-zero) scale
    m = np.zeros((100, 100))
    m[0, 0] = 3.0
    assert robust_scale([m]) == 3.0


def test_heatmap_rejects_bad_input():
    with pytest.raises(InvalidInputError):
        heatmap(np.zeros((2, 3, 4)))
    with pytest.raises(InvalidInputError):
        heatmap(np.zeros((3, 3)), scale=0.0)


def test_overlay_shows_the_image_where_the_map_is_zero():
    img = np.zeros((1, 4, 4), np.float32)
    img[0, :2] = 1.0
    sal = np.zeros((4, 4))
    sal[3, 3] = 1.0
    out = overlay(img, sal, scale=1.0, alpha=1.0)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    # zero map: grey image shows through, bright rows brighter than dark rows
    assert out[0, 0].mean() > out[2, 0].mean()
    assert np.ptp(out[0, 0]) == 0  # grey
    # saturated pixel shows the colormap's end colour
    assert np.array_equal(out[3, 3], DIVERGING(np.array([1.0]))[0])
    with pytest.raises(InvalidInputError):
        overlay(img, np.zeros((5, 5)))


def test_image_rgb_channels():
    grey = image_rgb(np.full((1, 2, 2), 0.5))
    assert grey.shape == (2, 2, 3) and np.all(grey == 128)
    rgb = np.zeros((3, 2, 2))
    rgb[0] = 1.0
    assert np.array_equal(image_rgb(rgb)[0, 0], [255, 0, 0])
    assert image_rgb(np.full((4, 2, 2), 2.0)).max() == 255  # clipped, alpha dropped


def test_png_round_trip_and_upscale():
    rgb = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    big = upscale(rgb, 3)
    assert big.shape == (12, 15, 3) and np.array_equal(big[::3, ::3], rgb)
    decoded = np.asarray(Image.open(io.BytesIO(encode_png(big))).convert("RGB"))
    assert np.array_equal(decoded, big)
    assert display_factor(28, 28) == 8 and display_factor(500, 300) == 1
    with pytest.raises(InvalidInputError):
        encode_png(np.zeros((2, 2, 3), np.float32))


def test_colorbar_runs_from_negative_to_positive():
    bar = colorbar(width=50, height=3)
    assert bar.shape == (3, 50, 3)
    assert bar[0, 0, 2] > bar[0, 0, 0] and bar[0, -1, 0] > bar[0, -1, 2]


def test_line_plot_svg_is_valid_xml_with_escaped_names():
    x = np.linspace(0, 1, 500)
    series = [Series("a<script>alert(1)</script>", x, np.exp(-3 * x)), Series("b & c", x[:100], np.where(x[:100] > x[49], np.nan, x[:100]))]
    svg = line_plot_svg(series, title="deletion <curve>", xlabel="fraction", ylabel="score")
    root = ET.fromstring(svg)  # parses: everything escaped
    ns = "{http://www.w3.org/2000/svg}"
    polylines = root.findall(f"{ns}polyline")
    assert len(polylines) == 2
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    n_points = [len(p.get("points").split()) for p in polylines]
    assert n_points[0] <= 200  # thinned
    assert n_points[1] == 50  # NaNs dropped
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "deletion <curve>" in texts and "b & c" in texts
