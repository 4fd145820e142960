"""Timing: interleaved repetitions after a warm-up, medians, ratios, profiles, the load average."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# -- timing -----------------------------------------------------------------------------------

MIN_BLOCK_SECONDS = 0.5
"""Blocks of short calls the peer comparisons time per round (``interleave(min_block=...)``)."""

SETTLE_SECONDS = 0.1
"""Pause before each timed call of :func:`interleave` (spin-waiting threads of the previous call
go idle; measured: a default ORT session burns ≈ 30 ms of CPU in the 50 ms after its last run)."""


@dataclass
class Timing:
    """Wall times (seconds) of one contender's repetitions (warm-up excluded)."""

    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return float(statistics.median(self.seconds)) if self.seconds else float("nan")

    @property
    def best(self) -> float:
        return float(min(self.seconds)) if self.seconds else float("nan")

    @property
    def spread(self) -> float:
        """(max − min) / median: how noisy the repetitions were."""
        if len(self.seconds) < 2:
            return 0.0
        return (max(self.seconds) - min(self.seconds)) / self.median

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": self.seconds, "median": self.median, "best": self.best}


def interleave(
    cases: Mapping[str, Callable[[], Any]],
    repeats: int = 5,
    warmup: int = 1,
    warmup_cases: Mapping[str, Callable[[], Any]] | None = None,
    verbose: bool = True,
    settle: float | None = None,
    min_block: float = 0.0,
) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Run every case ``warmup`` times, then ``repeats`` rounds alternating their order.

    Round r runs the cases in the given order when r is even and reversed when it is odd, so no
    contender always runs right after the other one (caches, thermal state, load changes).
    Every timed call starts after a pause of ``settle`` seconds (default :data:`SETTLE_SECONDS`):
    ONNX Runtime's idle workers spin-wait for about 30 ms of CPU after a run, and a contender
    timed inside that window would pay for the other's threads.

    ``min_block`` > 0 times a *block* of consecutive calls of one case per round: in the first
    round a case is called until the block lasts ``min_block`` seconds, and every later round
    calls it that many times; the recorded time is the block's time per call. For short calls
    this measures the sustained rate, so the first call after the other contender (or after the
    pause) weighs 1/k.
    ``warmup_cases`` (same keys) may give cheaper warm-up calls (e.g. a smaller budget) for cases
    whose first call only needs to fill caches. Returns ``(timings, last result of each case)``.
    """
    names = list(cases)
    warm = warmup_cases or cases
    for _ in range(warmup):
        for name in names:
            warm[name]()
    timings = {name: Timing(name) for name in names}
    results: dict[str, Any] = {}
    block: dict[str, int] = {}  # calls per round, fixed by the first round
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            time.sleep(SETTLE_SECONDS if settle is None else settle)
            calls, t0 = 0, time.perf_counter()
            while True:
                results[name] = cases[name]()
                calls += 1
                elapsed = time.perf_counter() - t0
                if calls == block.get(name) or (name not in block and elapsed >= min_block):
                    break
            block[name] = calls
            dt = elapsed / calls
            timings[name].seconds.append(dt)
            if verbose:
                print(f"  [{r + 1}/{repeats}] {name}: {dt:.3f} s", file=sys.stderr, flush=True)
    return timings, results


def ratio(ours: Timing | float, theirs: Timing | float) -> float:
    """ours / theirs of medians (< 1 means ours is faster)."""
    a = ours.median if isinstance(ours, Timing) else float(ours)
    b = theirs.median if isinstance(theirs, Timing) else float(theirs)
    return a / b if b > 0 else float("nan")


def paired_ratio(ours: Timing, theirs: Timing) -> float:
    """Median of the per-round ratios ours_r / theirs_r (each pair ran back to back)."""
    pairs = [a / b for a, b in zip(ours.seconds, theirs.seconds, strict=False) if b > 0]
    return float(statistics.median(pairs)) if pairs else float("nan")


def profile(fn: Callable[[], Any], top: int = 15, sort: str = "cumulative") -> str:
    """cProfile one call of ``fn``; the ``top`` functions by ``sort`` as text."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats(sort).print_stats(top)
    return out.getvalue()


# -- memory -----------------------------------------------------------------------------------


def load_average() -> tuple[float, float, float] | None:
    return tuple(round(v, 2) for v in os.getloadavg()) if hasattr(os, "getloadavg") else None  # type: ignore[return-value]


def load_line(before: Sequence[float] | None, after: Sequence[float] | None = None) -> str:
    """ "load average 1-min a → b on N CPUs" for a section's footer."""
    cpus = os.cpu_count()
    if before is None:
        return ""
    if after is None:
        return f"load average (1 min) {before[0]:.2f} on {cpus} CPUs"
    return f"load average (1 min) {before[0]:.2f} → {after[0]:.2f} on {cpus} CPUs"
