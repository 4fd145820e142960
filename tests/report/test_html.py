"""The HTML report: self-contained, escaped, complete; and checked in a real headless browser."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onnxplain.report.html import display_map, render_html, write_html


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    return p


def test_report_escapes_everything_from_files_and_models(report_data, hostile):
    text = render_html(report_data)
    assert "<script" not in text.lower()
    assert "&lt;script&gt;" in text
    assert "<b>not shown</b>" not in text  # non-numeric diagnostics are not rendered raw
    parsed = _parse(text)
    assert not any(tag == "script" for tag, _ in parsed.tags)
    # the hostile label round-trips as text, not markup
    assert any(hostile in chunk for chunk in parsed.text)


def test_report_is_self_contained(report_data):
    text = render_html(report_data)
    parsed = _parse(text)
    imgs = [attrs for tag, attrs in parsed.tags if tag == "img"]
    # per image: explicand + 4 maps + 2 colour bars
    assert len(imgs) == 2 * (1 + 4 + 2)
    for attrs in imgs:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,")
        png = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert png.size[0] > 0 and png.size[1] > 0
    assert not any(tag in ("link", "iframe", "object", "embed") for tag, _ in parsed.tags)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}  # only the SVG namespace, never fetched
    meta = [a for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert meta and "default-src 'none'" in meta[0]["content"] and "img-src data:" in meta[0]["content"]


def test_report_shows_every_section(report_data):
    text = render_html(report_data)
    for heading in ("Model parity", "Summary over 2 image(s)", "Black-box", "White-box", "Perturbation curves",
                    "Agreement between methods", "Settings", "Method settings"):
        assert heading in text
    assert text.count("<svg") == 2  # one curve plot per image
    assert "disagree" in text  # parity failure is called out
    # one table row per method in the summary, and the best mean per metric in bold
    assert text.count("class='num best'") >= 2


def test_display_map_uses_each_maps_own_scale():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(64, 64))
    shown, scale, note = display_map("geex", m)
    np.testing.assert_array_equal(shown, m)
    assert scale == pytest.approx(np.percentile(np.abs(m), 99.5)) and f"±{scale:.3g}" in note
    shown10, scale10, _ = display_map("ig", 10 * m)  # units do not change the picture
    np.testing.assert_allclose(shown10 / scale10, shown / scale)
    assert np.mean(np.abs(shown) > scale) <= 0.006  # at most the top 0.5 % saturate


def test_display_map_removes_rises_offset():
    rng = np.random.default_rng(1)
    m = 0.6 + 0.01 * rng.normal(size=(8, 8))
    shown, scale, note = display_map("rise", m)
    assert abs(shown.mean()) < 1e-12 and scale < 0.05 and f"minus its mean {m.mean():.3g}" in note
    assert np.array_equal(np.argsort(shown, axis=None), np.argsort(m, axis=None))  # ranking kept


def test_write_html_is_atomic(tmp_path, report_data, monkeypatch):
    out = tmp_path / "report.html"
    write_html(out, report_data)
    first = out.read_text()
    assert first.startswith("<!DOCTYPE html>")

    import onnxplain.report.html as html_mod

    def boom(data):
        raise RuntimeError("render failed")

    monkeypatch.setattr(html_mod, "render_html", boom)
    with pytest.raises(RuntimeError):
        html_mod.write_html(out, report_data)
    assert out.read_text() == first
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left


# -- the real browser -------------------------------------------------------------------------------
CHECK_SCRIPT = """<script>
window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push('error:'+(e.message||(e.target&&e.target.tagName)||''))},true);
document.addEventListener('securitypolicyviolation',function(e){window.__errors.push('csp:'+e.violatedDirective+' '+e.blockedURI)});
window.addEventListener('load',function(){var imgs=Array.prototype.slice.call(document.images);
var bad=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).map(function(i){return i.alt});
var out=document.createElement('pre');out.id='onnxplain-check';
out.textContent=JSON.stringify({images:imgs.length,bad:bad,errors:window.__errors,svgs:document.querySelectorAll('svg').length});
document.body.appendChild(out);});
</script>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def browser_check(html_text: str, tmp_path: Path) -> tuple[dict, list[str]]:
    """Load the page in headless Chromium; return the in-page check and the console lines it logged.

    The check script is inserted before the report's Content-Security-Policy, so the policy still
    governs everything the report itself loads.
    """
    browser = _chromium()
    tmp_path.mkdir(parents=True, exist_ok=True)
    page = tmp_path / "check.html"
    page.write_text(html_text.replace("<head>", "<head>" + CHECK_SCRIPT, 1), encoding="utf-8")
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    match = re.search(r'<pre id="onnxplain-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"the page did not finish loading in Chromium: {proc.stderr[-2000:]}"
    import html as html_lib

    result = json.loads(html_lib.unescape(match.group(1)))
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return result, console


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_in_headless_chromium(tmp_path, report_factory):
    data = report_factory(n_images=2)
    result, console = browser_check(render_html(data), tmp_path)
    assert result["images"] == 2 * (1 + 4 + 2)
    assert result["bad"] == []
    assert result["errors"] == []
    assert result["svgs"] == 2
    assert console == []

    # the same check flags a broken image and a remote fetch (so it can fail)
    broken = render_html(data).replace(
        "</body>", "<img alt='broken' src='data:image/png;base64,AAAA'><img alt='remote' src='http://127.0.0.1:9/x.png'></body>"
    )
    result, console = browser_check(broken, tmp_path / "neg")
    assert set(result["bad"]) == {"broken", "remote"}
    assert any(e.startswith("csp:img-src") for e in result["errors"])


def test_summary_shows_the_given_scores_not_a_mean(report_factory):
    """The summary table prints ReportData.summary (the metrics' own aggregation) as given."""
    data = report_factory(n_images=2, label="x")
    text = render_html(data)
    table = re.search(r"<table class='summary'>(.*?)</table>", text, re.S).group(1)
    rows = dict(re.findall(r"<tr><th>([^<]+)</th><td>[^<]*</td>((?:<td class='num[^']*'>[^<]*</td>){2})", table))
    for method, scores in data.summary.items():
        cells = re.findall(r">([^<]*)</td>", rows[method])
        assert cells == [f"{scores['aopc_deletion']:.4g}", f"{scores['deletion_auc']:.4g}"]
        means = np.mean([mr.metrics["aopc_deletion"] for im in data.images for mr in im.maps if mr.method == method])
        assert f"{means:.4g}" != cells[0]  # not the per-image mean
    assert "<td class='num best'>0.8</td>" in table and "<td class='num best'>0.15</td>" in table  # la is best
