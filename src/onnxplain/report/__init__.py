"""Pictures and pages: heatmaps and overlays (PNG), perturbation curves (SVG), the HTML report.

Nothing here imports torch or matplotlib.
"""

from __future__ import annotations

from onnxplain.report.colormaps import DIVERGING, SEQUENTIAL, Colormap
from onnxplain.report.curves import Series, line_plot_svg
from onnxplain.report.data import ImageResult, MapResult, MetricInfo, ReportData
from onnxplain.report.heatmap import (
    centred_map,
    colorbar,
    data_uri,
    encode_png,
    heatmap,
    image_rgb,
    map_picture,
    overlay,
    overlay_png,
    robust_scale,
    save_png,
    upscale,
)
from onnxplain.report.html import render_html, write_html

__all__ = [
    "DIVERGING",
    "SEQUENTIAL",
    "Colormap",
    "ImageResult",
    "MapResult",
    "MetricInfo",
    "ReportData",
    "Series",
    "centred_map",
    "colorbar",
    "data_uri",
    "encode_png",
    "heatmap",
    "image_rgb",
    "line_plot_svg",
    "map_picture",
    "overlay",
    "overlay_png",
    "render_html",
    "robust_scale",
    "save_png",
    "upscale",
    "write_html",
]
