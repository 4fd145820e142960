"""Perturbation curves (score vs fraction of pixels deleted/inserted) as inline SVG.

No plotting library: axes, ticks, one polyline per method and a legend, sized in SVG user units.
Every text that reaches the SVG (method names, titles) is XML-escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Categorical palette (distinguishable, also in grey print thanks to dashes on every other line).
PALETTE = (
    "#1f5fa8", "#d1495b", "#2e8b57", "#edae49", "#6a4c93", "#00798c", "#8c564b", "#e377c2",
    "#4d4d4d", "#9acd32",
)


@dataclass(frozen=True)
class Series:
    """One curve: ``y`` against ``x`` (same length), drawn under ``name``."""

    name: str
    x: np.ndarray
    y: np.ndarray


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = first
    while t <= hi + 1e-9 * step:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= max_points:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(int))
    return x[idx], y[idx]


def line_plot_svg(
    series: Sequence[Series],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    width: int = 380,
    height: int = 250,
    ylim: tuple[float, float] | None = None,
    max_points: int = 200,
) -> str:
    """An ``<svg>`` element with one polyline per series, axes with ticks, and a legend on the right."""
    esc = html.escape
    legend_w = 120
    left, right, top, bottom = 48, 10 + legend_w, 24 if title else 10, 38
    pw, ph = width - left - right, height - top - bottom
    clean = []
    for s in series:
        x = np.asarray(s.x, dtype=np.float64).ravel()
        y = np.asarray(s.y, dtype=np.float64).ravel()
        n = min(len(x), len(y))
        ok = np.isfinite(x[:n]) & np.isfinite(y[:n])
        clean.append((s.name, *_thin(x[:n][ok], y[:n][ok], max_points)))
    xs = np.concatenate([c[1] for c in clean]) if clean else np.zeros(0)
    ys = np.concatenate([c[2] for c in clean]) if clean else np.zeros(0)
    x0, x1 = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    if ylim is not None:
        y0, y1 = ylim
    else:
        y0, y1 = (min(0.0, float(ys.min())), float(ys.max())) if ys.size else (0.0, 1.0)
    if x1 <= x0:
        x1 = x0 + 1.0
    if y1 <= y0:
        y1 = y0 + 1.0

    def px(v: np.ndarray | float) -> np.ndarray | float:
        return left + (np.asarray(v) - x0) / (x1 - x0) * pw

    def py(v: np.ndarray | float) -> np.ndarray | float:
        return top + ph - (np.asarray(v) - y0) / (y1 - y0) * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title or "line plot")}">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    if title:
        parts.append(f'<text x="{left + pw / 2:.1f}" y="15" text-anchor="middle" class="ptitle">{esc(title)}</text>')
    for t in _nice_ticks(x0, x1):
        X = float(px(t))
        parts.append(f'<line x1="{X:.1f}" y1="{top + ph}" x2="{X:.1f}" y2="{top + ph + 4}" stroke="#666"/>')
        parts.append(f'<text x="{X:.1f}" y="{top + ph + 15}" text-anchor="middle">{_fmt(t)}</text>')
    for t in _nice_ticks(y0, y1):
        Y = float(py(t))
        parts.append(f'<line x1="{left}" y1="{Y:.1f}" x2="{left + pw}" y2="{Y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 5}" y="{Y + 3:.1f}" text-anchor="end">{_fmt(t)}</text>')
    if xlabel:
        parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">{esc(xlabel)}</text>')
    if ylabel:
        parts.append(
            f'<text x="12" y="{top + ph / 2:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 12 {top + ph / 2:.1f})">{esc(ylabel)}</text>'
        )
    for i, (name, x, y) in enumerate(clean):
        color = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if i % 2 else ""
        if x.size:
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(x), py(np.clip(y, y0, y1)), strict=True))
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{points}">'
                f"<title>{esc(name)}</title></polyline>"
            )
        ly = top + 8 + 16 * i
        lx = left + pw + 10
        parts.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 18}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{lx + 23}" y="{ly + 4}">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
