"""``batch_size="auto"``: measure the chunk size a model runs fastest at, cheaply, once per machine.

**The probe** (:func:`probe`) times a few chunk sizes under a time budget tied to the model's
own speed: the time of :data:`PROBE_SAMPLES` queries at the best rate seen, clamped to
[:data:`MIN_PROBE_SECONDS`, :data:`MAX_PROBE_SECONDS`]. A 1,000-query explanation then pays
about 5 % for it on a model where a query is costly (a 224×224 CNN on CPU), and a tiny model a
fixed quarter of a second (once per machine: see the cache below).

1. **Sweep** (:func:`sweep`, ≤ 70 % of the budget). Every size measured gets a warm-up call and
   timed calls for 1/16 of the budget (at least one). Sizes 1 and 8 come first: a call of b
   samples takes ``T(b) ≈ a + b·c``, and these two fix the per-call overhead a and the cost per
   sample c. Throughput stops improving once the overhead is a small share of a call, at the
   *knee* ``b ≥ a (1 − 5 %) / (5 % · c)`` (:func:`knee`): the sweep then measures the knee's
   power of two and its two neighbours, instead of walking every power of two from 1 (big
   CPU models have their knee at 1–4 and often slow down beyond; tiny models and GPUs have it
   at hundreds). A size is skipped when its warm-up and one call (predicted by the cost model)
   would not fit the sweep's share of the budget, when one call would take over 0.5 s, or when
   a chunk would exceed 256 MiB.
2. **Confirmation** (:func:`confirm_rates`, the rest of the budget). The sizes within 30 % of
   the sweep's best are timed again in up to three interleaved rounds: on a shared machine whose
   speed drifts by ±20 % within a second, one sequential pass favours whichever sizes ran in a
   fast spell.
3. **Pick** (:func:`pick_batch_size`): the largest size within 5 % of the best rate: the same
   speed in fewer calls leaves less per-call overhead to the explainer.

**The cache.** The result is kept in memory for the process and on disk, in one small JSON file
(:func:`cache_path`: ``$ONNXPLAIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/onnxplain``, else
``~/.cache/onnxplain``; ``batch_sizes.json``), keyed by everything the speed depends on
(:func:`cache_key`): the model's digest, device and provider, threads, layout, sample shape and
type, IO binding, and the machine (CPU model, usable cores, onnxruntime version). The file is
written atomically; an unreadable or corrupt file is ignored (and replaced on the next write),
and a cache that cannot be written costs only the next process a probe. Delete the file to
measure again.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain._io import atomic_write

CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""The chunk sizes a probe may pick."""
PROBE_SAMPLES = 50
"""The probe's budget: the time of this many queries at the best rate seen (5 % of 1,000 queries)."""
MIN_PROBE_SECONDS = 0.25
MAX_PROBE_SECONDS = 2.0
SWEEP_SHARE = 0.7
"""Share of the budget the sweep may use; confirmation gets the rest."""
KNEE_PROBE = 8
"""The second size measured: with size 1 it fixes the per-call overhead and per-sample cost."""
MAX_CHUNK_BYTES = 256 * 2**20
MAX_CALL_SECONDS = 0.5
FINALIST_MARGIN = 0.3
CONFIRM_ROUNDS = 3
TOLERANCE = 0.05
"""``pick_batch_size`` keeps the largest size whose throughput is within this share of the best."""

CACHE_FILE = "batch_sizes.json"
CACHE_VERSION = 1
MAX_CACHE_ENTRIES = 256

_MEMORY: dict[str, int] = {}
"""Sizes measured or read in this process, by :func:`cache_key`."""


def pick_batch_size(rates: Mapping[int, float], tolerance: float = TOLERANCE) -> int:
    """The largest batch size whose throughput (samples/s) is within ``tolerance`` of the best."""
    best_rate = max(rates.values())
    return max(size for size, rate in rates.items() if rate >= (1 - tolerance) * best_rate)


def confirm_rates(sizes: Sequence[int], rate_of: Callable[[int], float], rounds: int) -> dict[int, float]:
    """Re-measure ``sizes`` in ``rounds`` interleaved rounds (order reversed every other round);
    returns each size's median rate.

    A sequential sweep measures each size once, at a different moment: on a shared machine whose
    speed drifts by ±20 % within a second, it favours whichever sizes ran in a fast spell.
    Interleaving exposes every size to the same spells.
    """
    order = list(sizes)
    samples: dict[int, list[float]] = {size: [] for size in order}
    for r in range(rounds):
        for size in order if r % 2 == 0 else order[::-1]:
            samples[size].append(rate_of(size))
    return {size: float(np.median(values)) for size, values in samples.items()}


def budget_seconds(best_rate: float) -> float:
    """The probe's time budget for a model running ``best_rate`` samples/s (0: nothing measured yet)."""
    if best_rate <= 0:
        return MAX_PROBE_SECONDS
    return float(np.clip(PROBE_SAMPLES / best_rate, MIN_PROBE_SECONDS, MAX_PROBE_SECONDS))


@dataclass
class Probe:
    """One measurement of a model's throughput: forwards chunks, keeps time and rates."""

    forward: Callable[[Any], Any]
    make_chunk: Callable[[int], Any]
    sample_bytes: int
    clock: Callable[[], float] = time.perf_counter
    started: float = 0.0
    rates: dict[int, float] = field(default_factory=dict)
    calls: int = 0

    def spent(self) -> float:
        return self.clock() - self.started

    def best_rate(self) -> float:
        return max(self.rates.values(), default=0.0)

    def timed(self, chunk: Any, at_least: float) -> float:
        """Samples/s over back-to-back calls on ``chunk`` lasting ≥ ``at_least`` s (≥ one call)."""
        calls, t0 = 0, self.clock()
        while True:
            self.forward(chunk)
            calls += 1
            elapsed = self.clock() - t0
            if elapsed >= at_least:
                break
        self.calls += calls
        return len(chunk) * calls / max(elapsed, 1e-9)

    def fits(self, size: int) -> bool:
        """Whether ``size`` may be measured: a chunk ≤ 256 MiB, one call ≤ 0.5 s, and its warm-up
        plus one call within the sweep's share of the budget (at the best rate seen)."""
        best = self.best_rate()
        if size > 1 and size * self.sample_bytes > MAX_CHUNK_BYTES:
            return False
        if best <= 0:
            return True
        call = self.call_seconds(size)
        return call <= MAX_CALL_SECONDS and self.spent() + 2 * call <= SWEEP_SHARE * budget_seconds(best)

    def cost_model(self) -> tuple[float, float] | None:
        """``(a, c)`` of ``T(b) ≈ a + b·c`` from sizes 1 and 8 (None before both are measured)."""
        if 1 not in self.rates or KNEE_PROBE not in self.rates:
            return None
        t1, t8 = 1 / self.rates[1], KNEE_PROBE / self.rates[KNEE_PROBE]
        c = (t8 - t1) / (KNEE_PROBE - 1)
        return t1 - c, c

    def call_seconds(self, size: int) -> float:
        """Predicted time of one call of ``size``: the cost model when it has one, else the best rate."""
        model = self.cost_model()
        if model is not None and model[1] > 0:
            return max(model[0], 0.0) + size * model[1]
        return size / self.best_rate()

    def measure(self, size: int) -> None:
        """A warm-up call (allocations, kernel selection), then timed calls for 1/16 of the budget."""
        chunk = self.make_chunk(size)
        t0 = self.clock()
        self.forward(chunk)
        self.calls += 1
        guess = max(self.best_rate(), size / max(self.clock() - t0, 1e-9))  # the warm-up is the slower
        self.rates[size] = self.timed(chunk, budget_seconds(guess) / 16)


def knee(p: Probe) -> int:
    """The smallest candidate at which per-call overhead is ≤ 5 % of a call (:meth:`Probe.cost_model`):
    ``a / (a + b·c) ≤ TOLERANCE`` from ``b ≥ a (1 − TOLERANCE) / (TOLERANCE · c)``."""
    model = p.cost_model()
    if model is None:
        return 1
    a, c = model
    if c <= 0:
        return CANDIDATES[-1]  # overhead-bound: bigger is better as far as we may go
    if a <= 0:
        return 1
    exact = a * (1 - TOLERANCE) / (TOLERANCE * c)
    return next((size for size in CANDIDATES if size >= exact), CANDIDATES[-1])


def sweep(p: Probe) -> None:
    """Step 1 of the module docstring: sizes 1 and 8, then the knee and its neighbours."""
    p.measure(1)
    if p.fits(KNEE_PROBE):
        p.measure(KNEE_PROBE)
    k = knee(p)
    for size in (k, k // 2, 2 * k):
        if size in CANDIDATES and size not in p.rates and p.fits(size):
            p.measure(size)


def confirm(p: Probe) -> None:
    """Step 2: re-time the finalists in as many interleaved rounds (≤ 3) as the budget has left."""
    best = p.best_rate()
    finalists = sorted(s for s, r in p.rates.items() if r >= (1 - FINALIST_MARGIN) * best)
    if len(finalists) < 2:
        return
    left = budget_seconds(best) - p.spent()
    round_cost = sum(size / p.rates[size] for size in finalists)  # one call of each
    rounds = min(CONFIRM_ROUNDS, int(left / round_cost)) if round_cost > 0 else 0
    if rounds < 1:
        return
    chunk = p.make_chunk(finalists[-1])
    per_size = left / (rounds * len(finalists))
    p.rates.update(confirm_rates(finalists, lambda size: p.timed(chunk[:size], per_size), rounds))


def probe(
    forward: Callable[[Any], Any],
    make_chunk: Callable[[int], Any],
    sample_bytes: int,
    clock: Callable[[], float] = time.perf_counter,
) -> Probe:
    """Measure: sweep, confirm; the best size is ``pick_batch_size(result.rates)``.

    ``forward(chunk)`` runs one chunk, ``make_chunk(size)`` returns a chunk of ``size`` samples
    (its time counts as the probe's), ``sample_bytes`` is one sample's input size.
    """
    p = Probe(forward, make_chunk, sample_bytes, clock)
    p.started = p.clock()
    sweep(p)
    confirm(p)
    return p


# -- the cache ----------------------------------------------------------------------------------


def cache_dir() -> Path | None:
    """``$ONNXPLAIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/onnxplain`` (absolute paths only, as the
    XDG spec says), else ``~/.cache/onnxplain``; None when there is no home directory."""
    own = os.environ.get("ONNXPLAIN_CACHE_DIR")
    if own:
        return Path(own)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "onnxplain"
    try:
        return Path.home() / ".cache" / "onnxplain"
    except RuntimeError:  # no HOME and no passwd entry
        return None


def cache_path() -> Path | None:
    """The batch-size cache file (see the module docstring)."""
    root = cache_dir()
    return None if root is None else root / CACHE_FILE


@functools.lru_cache(maxsize=1)
def machine_identity() -> dict[str, Any]:
    """CPU model name, usable cores and onnxruntime version: what a cached size is valid for."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import onnxruntime as ort

    return {"cpu": cpu, "cores": cores, "onnxruntime": ort.__version__}


def cache_key(**parts: Any) -> str:
    """A stable key from the model/session ``parts`` and :func:`machine_identity`."""
    return json.dumps({**parts, **machine_identity()}, sort_keys=True, default=str)


def _read_entries(path: Path) -> dict[str, dict[str, Any]]:
    """The cache file's entries; ``{}`` for a missing, unreadable or malformed file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return {k: v for k, v in data["entries"].items() if isinstance(v, dict)}


def clear_memory() -> None:
    """Forget the sizes remembered in this process (the file stays): the next lookup reads the disk."""
    _MEMORY.clear()


def lookup(key: str) -> int | None:
    """The cached best batch size for ``key`` (memory, then disk), or None."""
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_path()
    entry = _read_entries(path).get(key) if path is not None else None
    size = entry.get("batch_size") if entry else None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        _MEMORY[key] = size
        return size
    return None


def store(key: str, size: int, probe_seconds: float) -> None:
    """Remember ``size`` for ``key`` in memory and in the cache file (best effort, atomic)."""
    _MEMORY[key] = int(size)
    path = cache_path()
    if path is None:
        return
    entries = _read_entries(path)
    entries[key] = {"batch_size": int(size), "probe_seconds": round(float(probe_seconds), 4), "written": time.time()}
    if len(entries) > MAX_CACHE_ENTRIES:  # keep the newest
        newest = sorted(entries.items(), key=lambda kv: float(kv[1].get("written", 0) or 0))[-MAX_CACHE_ENTRIES:]
        entries = dict(newest)
    try:
        with atomic_write(path, "w") as handle:
            json.dump({"version": CACHE_VERSION, "entries": entries}, handle, indent=1)
    except OSError:
        pass  # read-only or full disk: the next process probes again
