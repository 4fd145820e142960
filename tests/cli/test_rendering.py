"""The CLI's PNG overlays and the report's pictures are one rendering of a map."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from onnxplain.report.data import ImageResult, MapResult, ReportData
from onnxplain.report.heatmap import map_picture
from onnxplain.report.html import render_html


def _colours(rgb: np.ndarray) -> tuple[int, int]:
    """(reddish pixels, bluish pixels) of a picture."""
    r, b = rgb[..., 0].astype(int), rgb[..., 2].astype(int)
    return int(np.sum(r > b + 40)), int(np.sum(b > r + 40))


def _report_picture(html: str, alt: str) -> np.ndarray:
    match = re.search(rf'<img alt="{re.escape(alt)}" src="data:image/png;base64,([^"]+)"', html)
    assert match, alt
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(match.group(1)))).convert("RGB"))


def test_cli_png_and_report_picture_are_the_same_image(workdir, run_cli):
    """explain's PNG of a RISE map = map_picture of its saved map = the report's picture of that map."""
    out = workdir / "out"
    code, _, err = run_cli("explain", workdir / "rgb.onnx", workdir / "b.jpg", "-m", "rise,geex", "-n", "64",
                           "--out", out)
    assert code == 0, err
    from onnxplain.images import load_image

    x = load_image(workdir / "b.jpg", (3, 8, 8))
    maps = []
    for method in ("rise", "geex"):
        saliency = np.load(out / f"b.{method}.npy").mean(axis=0)
        png = np.asarray(Image.open(out / f"b.{method}.png").convert("RGB"))
        np.testing.assert_array_equal(png, map_picture(x, saliency, method)[0])
        maps.append(MapResult(method, "black-box", saliency))
    red, blue = _colours(np.asarray(Image.open(out / "b.rise.png").convert("RGB")))
    assert red > 0 and blue > 0  # RISE's PNG is not uniformly red
    data = ReportData(title="t", images=[ImageResult("b", "b.jpg", x, 0, "cat", 0.5, maps=maps)])
    html = render_html(data)
    for method in ("rise", "geex"):
        png = np.asarray(Image.open(out / f"b.{method}.png").convert("RGB"))
        np.testing.assert_array_equal(_report_picture(html, f"{method} map of b"), png)
