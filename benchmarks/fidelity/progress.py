"""Progress lines with an ETA on stderr, for a run that can take hours.

The ETA sums an estimate of every pending item: the mean wall time already observed in this run
for the same (model, method, budget); failing that, the same (method, budget) on another model;
failing that, for a black-box method, its budget times the seconds per query observed on that
model. Items nothing is known about yet count as 0 and the ETA is printed as a lower bound
("≥"); after the first photo of each model every item has an estimate. With ``jobs`` workers the
sum is divided by ``jobs``.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Any

from benchmarks.fidelity.store import Item


def fmt_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60):02d} min"


class Progress:
    """Counts what is done, prints a line per finished item with elapsed time and ETA."""

    def __init__(self, pending: list[Item], *, jobs: int = 1, stream: Any = None) -> None:
        self.pending = dict.fromkeys(pending)
        self.total = len(self.pending)
        self.jobs = max(1, jobs)
        self.stream = stream
        self.t0 = time.perf_counter()
        self.seen: dict[tuple[str, str, int | None], list[float]] = defaultdict(list)
        self.query_time: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # model -> [s, queries]

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def start(self) -> None:
        n = sum(1 for i in self.pending if not i.method.startswith("__"))
        self._print(f"real_fidelity: {n} explanations to compute (the rest are cached), {self.jobs} job(s)")

    def done(self, item: Item, seconds: float, queries: int, note: str, *, echo: bool = True) -> None:
        """Record a finished item (``echo``: print its line with the ETA)."""
        self.pending.pop(item, None)
        if not note.startswith("FAILED"):
            self.seen[(item.model, item.method, item.budget)].append(seconds)
            if queries and item.budget is not None:
                acc = self.query_time[item.model]
                acc[0] += seconds
                acc[1] += queries
        if echo:
            what = f"{item.method}@{item.budget}" if item.budget is not None else item.method
            text = (
                note
                if note.startswith("FAILED")
                else f"{seconds:.1f} s" + (f", {queries} queries" if queries else "")
            )
            if note and not note.startswith("FAILED"):
                text += f" ({note})"
            self._print(f"{item.model} {item.photo} {what}: {text} · {self.status()}")

    def line(self) -> None:
        self._print(self.status())

    def status(self) -> str:
        eta, complete = self.eta()
        done = self.total - len(self.pending)
        elapsed = time.perf_counter() - self.t0
        return f"{done}/{self.total} done, elapsed {fmt_duration(elapsed)}, ETA {'' if complete else '≥ '}{fmt_duration(eta)}"

    def estimate(self, item: Item) -> float | None:
        own = self.seen.get((item.model, item.method, item.budget))
        if own:
            return sum(own) / len(own)
        other = [s for (m, k, b), v in self.seen.items() if (k, b) == (item.method, item.budget) for s in v]
        if other:
            return sum(other) / len(other)
        seconds, queries = self.query_time.get(item.model, (0.0, 0.0))
        if item.budget is not None and queries:
            return item.budget * seconds / queries
        return None

    def eta(self) -> tuple[float, bool]:
        """(seconds left, whether every pending item had an estimate)."""
        total, complete = 0.0, True
        for item in self.pending:
            est = self.estimate(item)
            if est is None:
                complete = False
            else:
                total += est
        return total / self.jobs, complete
