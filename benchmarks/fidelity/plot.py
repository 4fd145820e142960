"""The figure of the real-photo fidelity benchmark, in the style of the GEEX paper's Fig. 5:
AOPC (paper protocol) and insertion AUC against the queries spent, one line per black-box method
(± one standard error), the IG reference and the random order as horizontal lines."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.fidelity.methods import RANDOM, REFERENCE
from benchmarks.fidelity.summary import Row

PANELS = (("aopc", "AOPC, paper protocol (↑)"), ("insertion", "insertion AUC (↑)"))


def _value(row: Row, metric: str) -> tuple[float, float]:
    return row.aopc() if metric == "aopc" else row.mean_se(metric)


def write_plot(rows_by_model: Mapping[str, Sequence[Row]], path: str | os.PathLike[str]) -> Path:
    """Draw one row of panels per model and save it (the format follows the suffix: .svg, .png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "onnxplain"  # reproducible ids in the SVG
    plt.rcParams["svg.fonttype"] = "none"  # text as text: a small file
    models = list(rows_by_model)
    fig, axes = plt.subplots(len(models), len(PANELS), figsize=(10, 3.6 * len(models)), squeeze=False)
    for r, model in enumerate(models):
        rows = [row for row in rows_by_model[model] if row.n > 0]
        for c, (metric, title) in enumerate(PANELS):
            _panel(axes[r][c], rows, metric, f"{model}: {title}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, max(1, len(labels))), frameon=False)
    fig.tight_layout(rect=(0, 0.06 if len(models) > 1 else 0.12, 1, 1))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, metadata={"Date": None} if target.suffix == ".svg" else None)
    plt.close(fig)
    return target


def _panel(ax: Any, rows: Sequence[Row], metric: str, title: str) -> None:
    from matplotlib.ticker import NullLocator, ScalarFormatter

    keys = list(dict.fromkeys(r.key for r in rows if r.kind == "blackbox"))
    for key in keys:
        line = sorted((r for r in rows if r.key == key), key=lambda r: r.budget or 0)
        xs = [r.mean_se("n_queries")[0] for r in line]
        ys, es = zip(*(_value(r, metric) for r in line), strict=True)
        ax.errorbar(xs, ys, yerr=[e if e == e else 0.0 for e in es], marker="o", capsize=3, label=key)
    for key, style, label in ((REFERENCE, "-", "IG (blur, 128 steps)"), (RANDOM, "--", "random order")):
        ref = next((r for r in rows if r.key == key), None)
        if ref is not None:
            ax.axhline(
                _value(ref, metric)[0], color="black" if key == REFERENCE else "grey", ls=style, label=label
            )
    budgets = sorted({r.budget for r in rows if r.budget is not None})
    ax.set_xscale("log")
    if budgets:  # ticks at the budgets (the points sit at the mean queries actually made)
        ax.set_xlim(budgets[0] / 1.4, budgets[-1] * 1.4)
        ax.set_xticks(budgets)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("queries per explanation")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
