"""One rendering of a map everywhere: the CLI's PNG overlays and the report's pictures."""

from __future__ import annotations

import numpy as np

from onnxplain.report.heatmap import map_picture


def _colours(rgb: np.ndarray) -> tuple[int, int]:
    """(reddish pixels, bluish pixels) of a picture."""
    r, b = rgb[..., 0].astype(int), rgb[..., 2].astype(int)
    return int(np.sum(r > b + 40)), int(np.sum(b > r + 40))


def test_an_all_positive_map_shows_both_colours():
    """RISE's map is E[f | pixel kept] ≈ f(x) everywhere: as a signed map it would be all red; declared
    unsigned, it is centred on its mean, so what raises the score is red and what lowers it blue."""
    rng = np.random.default_rng(0)
    image = rng.random((3, 16, 16))
    modulation = np.zeros((16, 16))
    modulation[:, :8], modulation[:, 8:] = 0.02, -0.02
    rise_like = 0.6 + modulation + 0.001 * rng.normal(size=(16, 16))
    assert rise_like.min() > 0
    red, blue = _colours(map_picture(image, rise_like, "rise")[0])
    assert red > 1000 and blue > 1000  # 16×16 enlarged ×14: half the map each, most of it saturated
    signed_red, signed_blue = _colours(map_picture(image, rise_like, "geex")[0])
    assert signed_blue == 0 and signed_red > 3000  # the same values read as a signed map: all red
    picture, note = map_picture(image, rise_like, "rise")
    assert picture.shape == (224, 224, 3) and "minus its mean 0.6" in note
