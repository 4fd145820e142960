"""Progress: bars when stderr is a terminal, one line per finished (image, method) when it is not."""

from __future__ import annotations

import re
import sys

import numpy as np

from onnxplain.cli._progress import LineProgress, duration
from onnxplain.pipeline.progress import Progress

LINE = re.compile(r"^\[(\d)/2\] (c|b) · geex: [0-9.]+ s \(elapsed [0-9.]+ s, about [0-9.]+ s left\)$")


def test_lines_without_a_terminal(workdir, run_cli):
    """Under pytest stderr is a pipe: one line per computed map on stdout, nothing on stderr."""
    code, out, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", workdir / "b.jpg",
                             "-m", "geex", "-n", "16", "--out", workdir / "o")
    assert code == 0 and err == ""
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert [LINE.match(line)[1] for line in lines] == ["1", "2"], out
    assert lines[-1].endswith("about 0.00 s left)")
    # a re-run computes nothing, so it prints no progress line
    code, out, _ = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", workdir / "b.jpg",
                           "-m", "geex", "-n", "16", "--out", workdir / "o")
    assert code == 0 and not [line for line in out.splitlines() if line.startswith("[")]


def test_bars_on_a_terminal(workdir, run_cli, monkeypatch):
    """With stderr a terminal the same run draws tqdm bars on stderr and prints no progress lines."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", workdir / "b.jpg",
                             "-m", "geex", "-n", "16", "--out", workdir / "o")
    assert code == 0
    assert "maps: 100%" in err and "2/2" in err  # the item bar, completed
    assert not [line for line in out.splitlines() if line.startswith("[")]
    code, out, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "geex", "-n", "16",
                             "--quiet", "--force", "--out", workdir / "o")
    assert code == 0 and out == "" and err == ""  # --quiet: neither


def test_line_estimate_is_mean_time_times_what_is_left():
    """Fake clock: 4 items of which 3 to compute (1 reused); after 2 s and 4 s, 3 s × 1 left."""
    said: list[str] = []
    now = [100.0]
    progress = LineProgress(said.append, clock=lambda: now[0])
    progress.start(4, "maps", to_compute=3)
    progress.finished("a", "geex", seconds=0.0, reused=True)
    now[0] += 2
    progress.finished("b", "geex", seconds=2.0, reused=False)
    now[0] += 4
    progress.finished("c", "geex", seconds=4.0, reused=False)
    assert said == [
        "[2/4] b · geex: 2.0 s (elapsed 2.0 s, about 4.0 s left)",
        "[3/4] c · geex: 4.0 s (elapsed 6.0 s, about 3.0 s left)",
    ]
    assert duration(185) == "3 min 05 s" and duration(3720) == "1 h 02 min" and duration(0.25) == "0.25 s"


class Recording(Progress):
    def __init__(self) -> None:
        self.queries: dict[str, int | None] = {}

    def item(self, image, method, *, queries, model):  # type: ignore[override]
        self.queries[method] = queries
        return super().item(image, method, queries=queries, model=model)


def test_query_totals_come_from_the_methods_declaration(tmp_path):
    """The inner bar's total is queries_per_explicand (LIME's included), not a guessed attribute."""
    from onnxplain.models.base import FunctionModel
    from onnxplain.pipeline.cache import JsonIndex, ResultCache
    from onnxplain.pipeline.maps import MapOutputs, MethodRun, explain_maps
    from onnxplain.registry import build_method

    model = FunctionModel(lambda z: np.stack([z.sum((1, 2, 3)), -z.sum((1, 2, 3))], 1), (1, 8, 8), 2)
    runs = [MethodRun(m, build_method(m, budget=20), model) for m in ("geex", "rise", "lime")]
    index = JsonIndex(tmp_path / "i.json", lambda doc: [], lambda cur, old: {"records": cur})
    outputs = MapOutputs(lambda i, m: {"npy": f"{i}.{m}.npy"},
                         lambda files, exp, i: np.save(tmp_path / files["npy"], exp.attributions))
    recording = Recording()
    x = np.random.default_rng(0).random((1, 1, 8, 8)).astype(np.float32)
    explain_maps(runs, x, ["x"], np.zeros(1, np.int64), ResultCache(tmp_path, index), outputs, progress=recording)
    assert recording.queries == {m.name: m.explainer.queries_per_explicand((1, 8, 8)) for m in runs}
    assert recording.queries["lime"] == 21  # its 20 samples and f(x)
