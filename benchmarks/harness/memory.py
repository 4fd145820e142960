"""Peak memory of one call, measured in a fresh child interpreter."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.paths import ROOT

_CHILD_MARK = "@@onnxplain-bench-child@@"


def _status_kib(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) if m else None


def current_rss() -> int:
    """Resident set size of this process now, in bytes."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # best effort elsewhere


def peak_rss() -> int:
    """Peak resident set size of this process (since start or the last :func:`reset_peak_rss`), bytes."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux ≥ 4.0); False when unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class IsolatedRun:
    """What :func:`run_isolated` measured in the child process."""

    target: str
    kwargs: dict[str, Any]
    seconds: float
    rss_before: int  # RSS after setup, right before the measured call
    peak_call: int  # peak RSS during the call (the process's peak if the reset is unsupported)
    peak_process: int  # peak RSS over the child's whole life (imports and setup included)
    peak_reset: bool
    result: dict[str, Any]

    @property
    def added(self) -> int:
        """Memory the call added on top of what the process held before it."""
        return max(0, self.peak_call - self.rss_before)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"added": self.added}


def run_isolated(
    target: str, kwargs: Mapping[str, Any] | None = None, timeout: float = 1800.0
) -> IsolatedRun:
    """Run ``module:function`` in a fresh interpreter and measure one call's time and peak RSS.

    ``function(**kwargs)`` does the setup (imports, model loading, inputs) and returns a
    zero-argument callable; the child records its RSS, resets the peak mark, runs the callable
    once and reports wall time and peak RSS. The callable may return a JSON-able dict, passed
    back in ``result``. Raises ``RuntimeError`` with the child's stderr tail when it fails.
    """
    payload = json.dumps({"target": target, "kwargs": dict(kwargs or {})})
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.harness", "--child", payload],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ
        | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_CHILD_MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"isolated run of {target} failed (exit {proc.returncode}):\n{tail}")
    data = json.loads(lines[-1][len(_CHILD_MARK) :])
    return IsolatedRun(target=target, kwargs=dict(kwargs or {}), **data)


def calibration_setup(mib: int) -> Callable[[], dict[str, Any]]:
    """A child target of known cost: the call allocates and touches ``mib`` MiB (self-check of
    :func:`run_isolated`: its ``added`` must come out ≈ ``mib`` MiB)."""

    def call() -> dict[str, Any]:
        block = np.ones(mib * 2**20 // 8)
        return {"sum": float(block[::4096].sum())}

    return call


def _child(payload: str) -> None:
    spec = json.loads(payload)
    module_name, _, func_name = spec["target"].partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    call = func(**spec["kwargs"])
    rss_before = current_rss()
    peak_before = peak_rss()
    reset = reset_peak_rss()
    t0 = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - t0
    peak_call = peak_rss()
    out = {
        "seconds": seconds,
        "rss_before": rss_before,
        "peak_call": peak_call,
        "peak_process": max(peak_call, peak_before),
        "peak_reset": reset,
        "result": result if isinstance(result, dict) else {},
    }
    print(_CHILD_MARK + json.dumps(out), flush=True)
