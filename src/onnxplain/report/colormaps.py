"""Colormaps as piecewise-linear interpolation between a few anchor colours (no matplotlib).

``DIVERGING`` maps [-1, 1] to blue – white – red with white at 0, for signed attributions
(negative evidence blue, positive red). ``SEQUENTIAL`` maps [0, 1] from near-black through
purple and orange to pale yellow, for unsigned maps. Both are monotone in lightness on each side
of their midpoint so that the colour bar reads as a scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Colormap:
    """Anchors ``(position, (r, g, b))`` with positions increasing over ``[vmin, vmax]``."""

    name: str
    positions: tuple[float, ...]
    colors: tuple[tuple[int, int, int], ...]
    vmin: float
    vmax: float

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """RGB uint8 of shape ``values.shape + (3,)``; values outside [vmin, vmax] are clipped, NaN is grey."""
        v = np.asarray(values, dtype=np.float64)
        nan = ~np.isfinite(v)
        v = np.clip(np.where(nan, self.vmin, v), self.vmin, self.vmax)
        table = np.asarray(self.colors, dtype=np.float64)
        rgb = np.stack([np.interp(v, self.positions, table[:, c]) for c in range(3)], axis=-1)
        rgb[nan] = 128.0
        return np.rint(rgb).astype(np.uint8)

    def css_gradient(self, direction: str = "to right") -> str:
        """A CSS ``linear-gradient`` showing the colormap (for colour bars in HTML)."""
        span = self.vmax - self.vmin
        stops = ", ".join(
            f"rgb({r},{g},{b}) {100 * (p - self.vmin) / span:.1f}%"
            for p, (r, g, b) in zip(self.positions, self.colors, strict=True)
        )
        return f"linear-gradient({direction}, {stops})"

    def hex(self, value: float) -> str:
        """``#rrggbb`` of one value."""
        r, g, b = (int(c) for c in self(np.asarray([value]))[0])
        return f"#{r:02x}{g:02x}{b:02x}"


DIVERGING = Colormap(
    name="blue-white-red",
    positions=(-1.0, -0.5, 0.0, 0.5, 1.0),
    colors=((24, 64, 152), (104, 152, 212), (248, 248, 248), (224, 128, 96), (160, 16, 32)),
    vmin=-1.0,
    vmax=1.0,
)

SEQUENTIAL = Colormap(
    name="dark-purple-orange",
    positions=(0.0, 0.25, 0.5, 0.75, 1.0),
    colors=((8, 8, 32), (84, 24, 112), (184, 56, 88), (244, 140, 40), (252, 244, 168)),
    vmin=0.0,
    vmax=1.0,
)


def text_color_on(rgb: tuple[int, int, int]) -> str:
    """Black or white, whichever reads better on a background colour (by relative luminance)."""
    r, g, b = (c / 255.0 for c in rgb)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000" if luminance > 0.45 else "#fff"
