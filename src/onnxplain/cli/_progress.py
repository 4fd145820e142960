"""Showing the pipeline's progress: bars on a terminal, one line per finished item elsewhere.

When stderr is a terminal, :class:`BarProgress` draws a bar over the (image, method) items on
stderr and, inside it, one over the current item's queries (its total declared by the method's
``queries_per_explicand``). When it is not (a CI log, a batch job, a pipe), bars would be
control characters in a file: :class:`LineProgress` prints one line per computed (image, method)
with its time, the time elapsed and an estimate of the rest. The lines go where the command's
other human-readable output goes (stdout, silenced by ``--quiet`` and ``--json``), so stderr keeps
only warnings and the one line of an error.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from onnxplain.pipeline.progress import Progress


def progress_mode(quiet: bool, json: bool) -> str:
    """``"off"`` under --quiet/--json, ``"bars"`` when stderr is a terminal, else ``"lines"``."""
    if quiet or json:
        return "off"
    return "bars" if sys.stderr.isatty() else "lines"


class QueryProgress:
    """A tqdm bar over a model's ``n_queries`` counter, refreshed by a background thread.

    The bar reads the counter the adapter keeps anyway, so the model is not wrapped and explainers
    see exactly the object they were given.
    """

    def __init__(self, model: Any, total: int | None, desc: str, enabled: bool) -> None:
        self.model, self.total, self.desc, self.enabled = model, total, desc, enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None

    def __enter__(self) -> QueryProgress:
        if not self.enabled:
            return self
        from tqdm import tqdm

        self._start = self._count()
        self._bar = tqdm(total=self.total, desc=self.desc, unit="q", leave=False, file=sys.stderr, dynamic_ncols=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _count(self) -> int:
        # any object with an ``n_queries`` counter (every adapter of this package keeps one)
        return int(getattr(self.model, "n_queries", 0))

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._update()

    def _update(self) -> None:
        done = self._count() - self._start
        if self.total is not None:
            done = min(done, self.total)
        self._bar.n = done
        self._bar.refresh()

    def __exit__(self, *exc: Any) -> None:
        if self._bar is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._bar.close()


class BarProgress(Progress):
    """tqdm bars on stderr: the items of a stage, and the queries of the current black-box item."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, total: int, label: str, *, to_compute: int | None = None) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, desc=label, file=sys.stderr, dynamic_ncols=True)

    @contextlib.contextmanager
    def item(self, image: str, method: str, *, queries: int | None, model: Any) -> Iterator[None]:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{method} · {image}")
        with QueryProgress(model, queries, f"{image} · {method}", enabled=queries is not None):
            yield

    def finished(self, image: str, method: str, *, seconds: float, reused: bool) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def duration(seconds: float) -> str:
    """``"0.42 s"``, ``"4.2 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class LineProgress(Progress):
    """One line per computed item: ``[k/n] image · method: 1.2 s (elapsed 4.0 s, about 6.1 s left)``.

    The estimate is the mean time of the items computed so far times the number still to compute
    (reused items cost nothing and are not counted).
    """

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.perf_counter) -> None:
        self.say, self.clock = say, clock
        self.total = self.done = self.to_compute = self.computed = 0
        self.spent = self.t0 = 0.0

    def start(self, total: int, label: str, *, to_compute: int | None = None) -> None:
        self.total, self.done, self.computed, self.spent = total, 0, 0, 0.0
        self.to_compute = total if to_compute is None else to_compute
        self.t0 = self.clock()

    def finished(self, image: str, method: str, *, seconds: float, reused: bool) -> None:
        self.done += 1
        if reused:
            return
        self.computed += 1
        self.spent += seconds
        left = self.spent / self.computed * max(0, self.to_compute - self.computed)
        self.say(
            f"[{self.done}/{self.total}] {image} · {method}: {duration(seconds)} "
            f"(elapsed {duration(self.clock() - self.t0)}, about {duration(left)} left)"
        )


def make_progress(mode: str, say: Callable[[str], None]) -> Progress:
    """The progress display of a :func:`progress_mode`."""
    if mode == "bars":
        return BarProgress()
    if mode == "lines":
        return LineProgress(say)
    return Progress()
