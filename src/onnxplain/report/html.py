"""The self-contained HTML report: one file, every image a data URI, no script, no network.

A Content-Security-Policy ``<meta>`` forbids every remote fetch and every script, so the page
cannot leak or execute anything even though label names and paths come from user files; all such
text is HTML-escaped as well. Layout per image: the explicand and its prediction, then a row of
black-box maps and a row of white-box maps, each row on one relative colour scale with its colour
bar, every map captioned with its faithfulness scores and cost; the perturbation curves; the
agreement matrix between methods.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from onnxplain._io import atomic_write
from onnxplain.registry import is_signed
from onnxplain.report.colormaps import DIVERGING, text_color_on
from onnxplain.report.curves import Series, line_plot_svg
from onnxplain.report.data import ImageResult, MapResult, MetricInfo, ReportData
from onnxplain.report.heatmap import (
    centred_map,
    colorbar,
    data_uri,
    display_factor,
    encode_png,
    image_rgb,
    map_picture,
    upscale,
)

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
KIND_TITLES = {
    "black-box": "Black-box (ONNX model, queries only)",
    "white-box": "White-box (PyTorch model, gradients)",
}

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:14px 0 6px}.muted{color:#666}.small{font-size:12px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.best{font-weight:bold}.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
figure{margin:0;width:214px}figure img{width:196px;height:auto;image-rendering:pixelated;border:1px solid #ccc}
figcaption{font-size:12px}figcaption b{font-size:13px}figcaption table{width:100%;font-size:11px;table-layout:fixed}figcaption td{overflow-wrap:anywhere}figcaption td{padding:1px 4px}figcaption td.num{white-space:nowrap}figcaption td.cost{white-space:normal}.sat{color:#8a5a00}
.explicand{display:flex;gap:16px;align-items:flex-start}.explicand img{width:196px;image-rendering:pixelated;border:1px solid #ccc}
.cbar{width:200px;font-size:12px}.cbar img{width:200px;height:14px;image-rendering:pixelated;border:1px solid #ccc}
.cbar .ticks{display:flex;justify-content:space-between}.plots{display:flex;flex-wrap:wrap;gap:16px}
svg.plot text{font-size:10px;fill:#333}svg.plot text.ptitle{font-size:12px;font-weight:bold}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px}.ok{color:#1b7a33}.bad{color:#b00020}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """Numbers compactly (4 significant digits), everything else as escaped text."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return _esc(v)
        return f"{v:.4g}"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, np.number)) for v in value):
        return _esc("(" + ", ".join(_fmt(v) for v in value) + ")")
    if value is None:
        return "–"
    return _esc(value)


def _img(png: bytes, alt: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{_esc(alt)}" src="{data_uri(png)}">'


def _kv_table(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _params_table(method_params: dict[str, dict[str, Any]]) -> str:
    if not method_params:
        return ""
    rows = []
    for method, params in method_params.items():
        text = ", ".join(f"{k}={v}" for k, v in params.items())
        rows.append(f"<tr><th>{_esc(method)}</th><td class='small'>{_esc(text)}</td></tr>")
    return "<h3>Method settings</h3><table>" + "".join(rows) + "</table>"


def _best_by_metric(maps: Sequence[MapResult], metrics: Sequence[MetricInfo]) -> dict[str, str]:
    best: dict[str, str] = {}
    for m in metrics:
        vals = [(mr.metrics[m.name], mr.method) for mr in maps if m.name in mr.metrics and np.isfinite(mr.metrics[m.name])]
        if vals:
            best[m.name] = (max if m.higher_is_better else min)(vals)[1]
    return best


SHORT_NAMES = {"aopc_deletion": "AOPC", "insertion_auc": "Ins. AUC", "deletion_auc": "Del. AUC"}


def _short(name: str) -> str:
    return SHORT_NAMES.get(name, name)


def display_map(method: str, saliency: np.ndarray) -> tuple[np.ndarray, float, str]:
    """What ``method``'s map picture shows: ``(map, its own ±scale, caption note)``
    (:func:`~onnxplain.report.heatmap.centred_map` with the method's declared sign)."""
    return centred_map(saliency, signed=is_signed(method))


def _arrow(info: MetricInfo) -> str:
    return "↑" if info.higher_is_better else "↓"


def _summary(data: ReportData) -> str:
    """Each method's score per metric (``data.summary``, aggregated by the metric), with cost totals."""
    methods: dict[str, list[MapResult]] = {}
    for image in data.images:
        for mr in image.maps:
            methods.setdefault(mr.method, []).append(mr)
    if not methods:
        return ""
    scores = {method: data.summary.get(method, {}) for method in methods}
    best = {}
    for m in data.metrics:
        vals = [(v[m.name], k) for k, v in scores.items() if m.name in v and np.isfinite(v[m.name])]
        if vals:
            best[m.name] = (max if m.higher_is_better else min)(vals)[1]
    head = "".join(f"<th>{_esc(m.name)} {_arrow(m)}</th>" for m in data.metrics)
    rows = []
    for method, runs in methods.items():
        cells = "".join(
            f"<td class='num{' best' if best.get(m.name) == method else ''}'>{_fmt(scores[method].get(m.name))}</td>"
            for m in data.metrics
        )
        queries = sum(r.n_queries for r in runs)
        backward = sum(r.n_backward for r in runs)
        seconds = sum(r.seconds for r in runs)
        rows.append(
            f"<tr><th>{_esc(method)}</th><td>{_esc(runs[0].kind)}</td>{cells}"
            f"<td class='num'>{_fmt(queries)}</td><td class='num'>{_fmt(backward)}</td>"
            f"<td class='num'>{seconds:.2f}</td></tr>"
        )
    legend = "".join(
        f"<li><b>{_esc(m.name)}</b> ({'higher' if m.higher_is_better else 'lower'} is better)"
        f"{': ' + _esc(m.description) if m.description else ''}</li>"
        for m in data.metrics
    )
    return (
        f"<h2>Summary over {len(data.images)} image(s)</h2>"
        f"<table class='summary'><tr><th>method</th><th>kind</th>{head}<th>queries</th><th>backward passes</th>"
        "<th>seconds</th></tr>"
        + "".join(rows)
        + f"</table><ul class='small'>{legend}</ul><p class='small muted'>Scores over all images, aggregated "
        "by each metric as in results.json. Bold: best per metric.</p>"
    )


def _parity(parity: dict[str, Any] | None) -> str:
    if not parity:
        return ""
    ok = parity.get("ok")
    verdict = ""
    if ok is not None:
        verdict = (
            "<p class='ok'>The ONNX and PyTorch models agree.</p>"
            if ok
            else "<p class='warn bad'>The ONNX and PyTorch models disagree: black-box and white-box maps "
            "explain different functions.</p>"
        )
    rows = [(k, v) for k, v in parity.items() if k != "ok"]
    return "<h2>Model parity (ONNX vs PyTorch)</h2>" + verdict + _kv_table(rows)


def _colorbar_html() -> str:
    png = encode_png(colorbar(DIVERGING, width=200, height=14))
    return (
        f"<div class='cbar'>{_img(png, 'colour scale')}<div class='ticks'>"
        "<span>−1</span><span>0</span><span>+1</span></div>"
        "<div class='muted'>× each map's own scale (in its caption); blue −, red +</div></div>"
    )


def _map_figure(image: ImageResult, mr: MapResult, metrics: Sequence[MetricInfo], best: dict[str, str]) -> str:
    picture, note = map_picture(image.image, mr.saliency, mr.method)
    png = encode_png(picture)
    rows = []
    for m in metrics:
        if m.name in mr.metrics:
            cls = " best" if best.get(m.name) == mr.method else ""
            rows.append(
                f"<tr><td title='{_esc(m.name)}'>{_esc(_short(m.name))} {_arrow(m)}</td>"
                f"<td class='num{cls}'>{_fmt(mr.metrics[m.name])}</td></tr>"
            )
    cost = f"{_fmt(mr.n_queries)} queries" if mr.kind == "black-box" else f"{_fmt(mr.n_backward)} backward"
    rows.append(f"<tr><td>cost</td><td class='num cost'>{cost}, {mr.seconds:.2f} s</td></tr>")
    if mr.completeness_gap is not None and np.isfinite(mr.completeness_gap):
        rows.append(f"<tr><td>completeness gap</td><td class='num'>{_fmt(mr.completeness_gap)}</td></tr>")
    for key, value in mr.diagnostics.items():
        if key == "completeness_gap":
            continue
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            rows.append(f"<tr><td>{_esc(key)}</td><td class='num'>{_fmt(value)}</td></tr>")
    return (
        f"<figure>{_img(png, f'{mr.method} map of {image.name}')}"
        f"<figcaption><b>{_esc(mr.method)}</b> <span class='small muted'>{note}</span>"
        f"<table>{''.join(rows)}</table></figcaption></figure>"
    )


def _agreement_table(methods: Sequence[str], matrix: np.ndarray, name: str) -> str:
    head = "".join(f"<th>{_esc(m)}</th>" for m in methods)
    rows = []
    for i, mi in enumerate(methods):
        cells = []
        for j in range(len(methods)):
            v = float(matrix[i, j])
            if np.isfinite(v):
                bg = DIVERGING(np.asarray([v]))[0]
                color = text_color_on(tuple(int(c) for c in bg))
                cells.append(
                    f"<td class='num' style='background:rgb({bg[0]},{bg[1]},{bg[2]});color:{color}'>{v:.2f}</td>"
                )
            else:
                cells.append("<td class='num'>–</td>")
        rows.append(f"<tr><th>{_esc(mi)}</th>{''.join(cells)}</tr>")
    return f"<table class='agreement' title='{_esc(name)}'><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _image_section(image: ImageResult, data: ReportData) -> str:
    x = image_rgb(image.image)
    explicand_png = encode_png(upscale(x, display_factor(*x.shape[:2])))
    top = ", ".join(f"{_esc(label)} {p:.3f}" for label, p in image.top)
    facts = [
        f"<b>prediction</b>: {_esc(image.label)} (class {image.target}, score {image.score:.4g})",
        f"<b>source</b>: <span class='small'>{_esc(image.source)}</span>",
    ]
    if image.true_label is not None:
        facts.insert(1, f"<b>true label</b>: {_esc(image.true_label)}")
    if top:
        facts.append(f"<b>top classes</b>: {top}")
    parts = [
        f"<section><h2>Image {_esc(image.name)}</h2>",
        f"<div class='explicand'>{_img(explicand_png, f'explicand {image.name}')}<div>",
        "".join(f"<div>{f}</div>" for f in facts),
        "</div></div>",
    ]
    for kind in ("black-box", "white-box"):
        maps = [mr for mr in image.maps if mr.kind == kind]
        if not maps:
            continue
        best = _best_by_metric(image.maps, data.metrics)
        parts.append(f"<h3>{_esc(KIND_TITLES[kind])}</h3><div class='row'>")
        parts.extend(_map_figure(image, mr, data.metrics, best) for mr in maps)
        parts.append(_colorbar_html() + "</div>")
    if image.curves:
        parts.append("<h3>Perturbation curves</h3><div class='plots'>")
        for curve_name, by_method in image.curves.items():
            series = [Series(method, np.asarray(xy[0]), np.asarray(xy[1])) for method, xy in by_method.items()]
            parts.append(
                line_plot_svg(series, title=curve_name, xlabel="fraction of pixels", ylabel="target score")
            )
        parts.append("</div>")
    if image.agreement_methods:
        parts.extend(_agreement_tables(image.agreement_methods, image.agreement_tables(data.agreement_name), ""))
    parts.append("</section>")
    return "".join(parts)


def _agreement_tables(methods: Sequence[str], tables: dict[str, np.ndarray], suffix: str) -> list[str]:
    return [
        f"<h3>Agreement between methods ({_esc(title)}{suffix})</h3>" + _agreement_table(methods, matrix, title)
        for title, matrix in tables.items()
    ]


def _mean_agreement(data: ReportData) -> str:
    """Every agreement table averaged over the images (NaN-aware), when all images share the methods."""
    images = [im for im in data.images if im.agreement_tables(data.agreement_name)]
    if len(images) < 2:
        return ""
    methods = images[0].agreement_methods
    if any(im.agreement_methods != methods for im in images):
        return ""
    tables = [im.agreement_tables(data.agreement_name) for im in images]
    titles = [t for t in tables[0] if all(t in other for other in tables)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN cell stays NaN
        mean = {t: np.nanmean(np.stack([tab[t] for tab in tables]), axis=0) for t in titles}
    return "".join(_agreement_tables(methods, mean, ", mean over images"))


def render_html(data: ReportData) -> str:
    """The report as one HTML string (UTF-8, self-contained)."""
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    from onnxplain import __version__

    header = [
        f"<h1>{_esc(data.title)}</h1>",
        f"<p class='muted small'>onnxplain {_esc(__version__)} · {created}"
        + (f" · <code>{_esc(data.command)}</code>" if data.command else "")
        + "</p>",
    ]
    header.extend(f"<p class='warn'>{_esc(note)}</p>" for note in data.notes)
    body = [
        "".join(header),
        _parity(data.parity),
        _summary(data),
        _mean_agreement(data),
        "".join(_image_section(image, data) for image in data.images),
        "<h2>Settings</h2>",
        ("<h3>Model</h3>" + _kv_table(data.model.items())) if data.model else "",
        ("<h3>Run</h3>" + _kv_table(data.settings.items())) if data.settings else "",
        _params_table(data.method_params),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(data.title)}</title><style>{_CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )


def write_html(path: str | os.PathLike[str], data: ReportData) -> None:
    """Render and write the report atomically."""
    text = render_html(data)
    with atomic_write(path, "w") as handle:
        handle.write(text)
