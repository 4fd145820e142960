"""Markdown of the real-photo fidelity benchmark: one table per model, the agreement at three
scales, and the goals of issue 16 checked as met / not met with their numbers."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.fidelity.methods import REFERENCE
from benchmarks.fidelity.summary import Row, mean_se

HIGH, LOW = 5000, 2000  # the budgets the goals are stated at
SCALE = "14x14"  # the agreement scale of the headline columns
AOPC_SHARE = 0.95
SPEARMAN_GOAL = 0.5


def fmt(mean: float, se: float | None = None, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    if se is not None and math.isfinite(se):
        text += f" ± {se:.{digits}f}"
    return text


def _scale_label(scale: str) -> str:
    """``"14x14"`` → ``"14×14"``; ``"pixel"`` stays."""
    return re.sub(r"^(\d+)x(\d+)$", r"\1×\2", scale)


def _calls(row: Row) -> str:
    q, _ = row.mean_se("n_queries")
    b, _ = row.mean_se("n_backward")
    if not math.isfinite(q):
        return "—"
    if row.kind == "random":
        return "0"
    if row.kind == "whitebox":
        return f"{q:.0f} fwd + {b:.0f} bwd"
    return f"{q:.0f}"


def model_table(rows: Sequence[Row], n_photos: int) -> str:
    """The headline table: rows = methods × budgets, means over photos ± standard errors."""
    header = [
        "method",
        "budget",
        "AOPC, paper protocol ↑",
        "insertion AUC ↑",
        "deletion AUC ↓",
        f"Spearman@{_scale_label(SCALE)} vs IG ↑",
        f"top-10 %@{_scale_label(SCALE)} vs IG ↑",
        "seconds",
        "model calls",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if row.n == 0:
            continue
        label = row.label if row.n == n_photos else f"{row.label} ({row.n} of {n_photos} photos)"
        seconds, _ = row.mean_se("seconds")
        cells = [
            label,
            "—" if row.budget is None else str(row.budget),
            fmt(*row.aopc(), digits=4),
            fmt(*row.mean_se("insertion")),
            fmt(*row.mean_se("deletion")),
            fmt(*row.mean_se("", SCALE, "spearman")),
            fmt(*row.mean_se("", SCALE, "top10")),
            "0" if row.kind == "random" else f"{seconds:.1f}",
            _calls(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def agreement_table(rows: Sequence[Row]) -> str:
    """Spearman and top-10 % intersection with the IG reference at every stored scale (means)."""
    scales = sorted(
        {s for row in rows for rec in row.per_photo.values() for s in rec.get("agreement", {})},
        key=lambda s: (0, 0) if s == "pixel" else (1, -int(s.split("x")[0])),
    )
    names = [_scale_label(s) for s in scales]
    header = ["method", "budget"] + [f"Spearman {s}" for s in names] + [f"top-10 % {s}" for s in names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if row.n == 0 or row.key == REFERENCE:
            continue
        cells = [row.label, "—" if row.budget is None else str(row.budget)]
        cells += [fmt(row.mean_se("", s, "spearman")[0]) for s in scales]
        cells += [fmt(row.mean_se("", s, "top10")[0]) for s in scales]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- goals ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    text: str
    met: bool | None  # None: not evaluated (a row is missing)
    numbers: str

    def line(self) -> str:
        verdict = "**not evaluated**" if self.met is None else ("**met**" if self.met else "**not met**")
        return f"- {self.text}: {verdict} ({self.numbers})"


def _find(rows: Sequence[Row], key: str, budget: int | None) -> Row | None:
    return next((r for r in rows if r.key == key and r.budget == budget and r.n > 0), None)


def goals(rows: Sequence[Row]) -> list[Goal]:
    """The goals of issue 16.2 on one model's rows."""
    geex, geex_low = _find(rows, "geex", HIGH), _find(rows, "geex", LOW)
    rise, rise_low = _find(rows, "rise", HIGH), _find(rows, "rise", LOW)
    lime, ig = _find(rows, "lime", HIGH), _find(rows, REFERENCE, None)

    def need(text: str, **named: Row | None) -> Goal | None:
        absent = [name for name, row in named.items() if row is None]
        return Goal(text, None, "needs " + ", ".join(absent)) if absent else None

    out: list[Goal] = []
    text = f"AOPC at {HIGH}: GEEX ≥ {AOPC_SHARE} × IG(blur)"
    g = need(text, **{f"geex@{HIGH}": geex, "ig-ref": ig})
    if g is None:
        a, b = geex.aopc()[0], ig.aopc()[0]  # type: ignore[union-attr]
        g = Goal(text, a >= AOPC_SHARE * b, f"GEEX {a:.4f}, {AOPC_SHARE} × IG {b:.4f} = {AOPC_SHARE * b:.4f}")
    out.append(g)
    for name, other in (("RISE", rise), ("LIME", lime)):
        text = f"AOPC at {HIGH}: GEEX > {name}"
        g = need(text, **{f"geex@{HIGH}": geex, f"{name.lower()}@{HIGH}": other})
        if g is None:
            a, b = geex.aopc()[0], other.aopc()[0]  # type: ignore[union-attr]
            g = Goal(text, a > b, f"GEEX {a:.4f}, {name} {b:.4f}")
        out.append(g)
    text = f"insertion AUC at {HIGH}: GEEX ≥ RISE"
    g = need(text, **{f"geex@{HIGH}": geex, f"rise@{HIGH}": rise})
    if g is None:
        a, b = geex.mean_se("insertion")[0], rise.mean_se("insertion")[0]  # type: ignore[union-attr]
        g = Goal(text, a >= b, f"GEEX {a:.3f}, RISE {b:.3f}")
    out.append(g)
    text = f"AOPC at {LOW}: GEEX keeps ≥ {AOPC_SHARE} of its AOPC at {HIGH}"
    g = need(text, **{f"geex@{LOW}": geex_low, f"geex@{HIGH}": geex})
    if g is None:
        a, b = geex_low.aopc()[0], geex.aopc()[0]  # type: ignore[union-attr]
        g = Goal(
            text,
            a >= AOPC_SHARE * b,
            f"GEEX@{LOW} {a:.4f}, {AOPC_SHARE} × GEEX@{HIGH} {b:.4f} = {AOPC_SHARE * b:.4f}",
        )
    out.append(g)
    out.append(_insertion_match(geex_low, rise_low))
    text = f"Spearman@{_scale_label(SCALE)} of GEEX at {HIGH} vs IG(blur) ≥ {SPEARMAN_GOAL}"
    g = need(text, **{f"geex@{HIGH}": geex})
    if g is None:
        m, se = geex.mean_se("", SCALE, "spearman")  # type: ignore[union-attr]
        g = Goal(text, bool(m >= SPEARMAN_GOAL), f"mean {fmt(m, se)}")
    out.append(g)
    return out


def _insertion_match(geex: Row | None, rise: Row | None) -> Goal:
    """GEEX matches RISE's insertion AUC: the mean paired difference GEEX − RISE over the common
    photos is ≥ −1 standard error of that difference (i.e. not lower beyond the noise)."""
    text = f"insertion AUC at {LOW}: GEEX matches RISE (paired difference GEEX − RISE ≥ −1 SE)"
    absent = [n for n, r in ((f"geex@{LOW}", geex), (f"rise@{LOW}", rise)) if r is None]
    if absent:
        return Goal(text, None, "needs " + ", ".join(absent))
    assert geex is not None and rise is not None
    common = [p for p in geex.per_photo if p in rise.per_photo]
    d = np.asarray(
        [
            geex.per_photo[p].get("insertion", np.nan) - rise.per_photo[p].get("insertion", np.nan)
            for p in common
        ]
    )
    m, se = mean_se(d)
    if not math.isfinite(m):
        return Goal(text, None, "no common photo with both values")
    ok = m >= -(se if math.isfinite(se) else 0.0)
    a, b = geex.mean_se("insertion")[0], rise.mean_se("insertion")[0]
    return Goal(
        text,
        bool(ok),
        f"GEEX {a:.3f}, RISE {b:.3f}, paired difference {fmt(m, se)} over {len(common)} photos",
    )
