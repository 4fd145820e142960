"""The one place the benchmark machinery lives: timing, memory, the model's own speed limit, the
machine, the benchmark models, and writing results into ``benchmarks/README.md``.

Every comparison in ``benchmarks/`` follows the same rules (issue 8):

- **Interleaved**: the contenders of one comparison run in the same process, alternating
  (A B, B A, A B, …) after a warm-up, so a change in machine load hits both alike;
  :func:`interleave`.
- **Medians and ratios**: absolute times on a shared machine are noisy; what we publish is the
  median of several repetitions and the ratio ours/theirs measured side by side (:class:`Timing`,
  :func:`ratio`).
- **Peak memory in a fresh process**: :func:`run_isolated` runs a setup function in a child
  interpreter, resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) after the setup, runs
  the measured call and reports the peak RSS of the call and of the whole process.
- **The model's own limit**: :func:`best_per_sample_time` times a plain ``onnxruntime``
  ``InferenceSession`` over batch sizes; ``n_queries × best per-sample time`` is the least wall
  time any query-based explainer can take (query efficiency = that / wall time).
- **The exact command** next to every number: :func:`command` and :func:`write_section`.

Nothing here imports torch at module level (the benchmark models are built lazily).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import json
import os
import platform
import pstats
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
README = BENCH_DIR / "README.md"
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = Path(os.environ.get("ONNXPLAIN_BENCH_CACHE", Path(tempfile.gettempdir()) / "onnxplain-bench"))

# Set by ``python -m benchmarks`` for the scripts it runs, so each section names the command that
# regenerated it.
COMMAND_ENV = "ONNXPLAIN_BENCH_COMMAND"
NO_README_ENV = "ONNXPLAIN_BENCH_NO_README"
_CHILD_MARK = "@@onnxplain-bench-child@@"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def run_isolated(target: str, kwargs: Mapping[str, Any] | None = None, timeout: float = 1800.0) -> IsolatedRun:
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
        env=os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
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
        return {"sum": float(block[:: 4096].sum())}

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


# -- the model's own speed limit ----------------------------------------------------------------


@dataclass
class BestTime:
    """Plain ONNX Runtime throughput: per-sample seconds at each batch size and the best one."""

    per_sample: float
    batch_size: int
    table: dict[int, float]

    def limit(self, n_queries: int) -> float:
        """The least wall time ``n_queries`` forwards can take on this machine."""
        return n_queries * self.per_sample

    def to_dict(self) -> dict[str, Any]:
        return {"per_sample": self.per_sample, "batch_size": self.batch_size, "table": self.table}


def plain_session(model: str | os.PathLike[str] | bytes, threads: int | None = None, device: str = "cpu") -> Any:
    """A default-configured ``InferenceSession`` (all graph optimisations, ORT's own threads).

    ``device="cuda[:i]"`` uses the CUDA provider (for GPU runs of the suite).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    source = bytes(model) if isinstance(model, (bytes, bytearray)) else str(model)
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(source, sess_options=options, providers=providers)


def _runner(session: Any, name: str, batch: np.ndarray, device: str) -> Callable[[], Any]:
    """One forward of ``batch``: plain ``run`` on CPU; on CUDA the input stays on the device (IO
    binding) and only the scores are copied back, as ``OnnxModel`` does."""
    if not device.startswith("cuda"):
        feed = {name: batch}
        return lambda: session.run(None, feed)
    import onnxruntime as ort

    index = int(device.partition(":")[2] or 0)
    value = ort.OrtValue.ortvalue_from_numpy(batch, "cuda", index)
    binding = session.io_binding()
    binding.bind_ortvalue_input(name, value)
    binding.bind_output(session.get_outputs()[0].name, "cuda", index)

    def run() -> Any:
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    return run


def best_per_sample_time(
    model: str | os.PathLike[str] | bytes,
    input_shape: Sequence[int] | None = None,
    batch_sizes: Iterable[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
    seconds_per_size: float = 0.5,
    rounds: int = 5,
    max_chunk_bytes: int = 256 * 2**20,
    threads: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    max_call_seconds: float = 1.0,
) -> BestTime:
    """The model's best per-sample time on this machine, measured with a plain ORT session.

    For each batch size: one warm-up call, then ``rounds`` rounds of back-to-back calls on the
    same random [0,1] batch (each round ≥ ``seconds_per_size / rounds`` and ≥ 1 call). A round's
    per-sample time is its wall time / samples — *sustained* throughput, so thread stalls count
    as they do in an explanation — and the size's value is the **median** over rounds (robust to a
    busy neighbour); slow calls get fewer rounds (≥ 2). The sweep stops once two consecutive sizes
    are more than 10 % slower per sample than the best so far, a chunk would exceed
    ``max_chunk_bytes``, or (after three sizes) one call of the next size would take longer than
    ``max_call_seconds`` at the best rate (a big model's throughput is flat by then). Returns the
    best (smallest) per-sample time, its batch size and the table. On ``device="cuda"`` the batch is
    bound on the device (IO binding) and only the scores come back.
    """
    session = plain_session(model, threads, device)
    inp = session.get_inputs()[0]
    if input_shape is None:
        dims = inp.shape[1:]
        if not all(isinstance(d, int) and d > 0 for d in dims):
            raise ValueError(f"the model's sample shape {dims} is dynamic; pass input_shape.")
        input_shape = dims
    shape = tuple(int(d) for d in input_shape)
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None
    sizes = [fixed] if fixed else list(batch_sizes)
    rng = np.random.default_rng(seed)
    table: dict[int, float] = {}
    best_size, best = sizes[0], float("inf")
    worse = 0
    for size in sizes:
        if size > sizes[0] and size * int(np.prod(shape)) * 4 > max_chunk_bytes:
            break
        if len(table) >= 3 and size * best > max_call_seconds:
            break
        forward = _runner(session, inp.name, rng.random((size, *shape), dtype=np.float32), device)
        t_warm = time.perf_counter()
        forward()
        t_warm = time.perf_counter() - t_warm
        n_rounds = max(2, min(rounds, int(seconds_per_size / max(t_warm, 1e-9))))
        per_round = seconds_per_size / n_rounds
        samples: list[float] = []
        for _ in range(n_rounds):
            calls, t0 = 0, time.perf_counter()
            while True:
                forward()
                calls += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= per_round:
                    break
            samples.append(elapsed / (calls * size))
        per = float(statistics.median(samples))
        table[size] = per
        if per < best:
            best_size, best, worse = size, per, 0
        elif per > 1.1 * best:
            worse += 1
            if worse >= 2:
                break
    return BestTime(per_sample=best, batch_size=best_size, table=table)


# -- device options shared by the scripts ------------------------------------------------------


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--rehearse-cuda-path`` for the scripts that run onnxplain on a model."""
    parser.add_argument(
        "--device", default="cpu", help="device of onnxplain's OnnxModel: cpu (default), cuda, cuda:<i>"
    )
    parser.add_argument(
        "--rehearse-cuda-path",
        action="store_true",
        help="on CPU, run the CUDA code path: IO binding with fixed chunk shapes + torch-built perturbations",
    )


def query_model(path: str | os.PathLike[str], device: str = "cpu", rehearse: bool = False, **kwargs: Any) -> Any:
    """onnxplain's ``OnnxModel(output="probs")`` on ``device``; ``rehearse`` forces IO binding on CPU."""
    from onnxplain.models import OnnxModel

    if rehearse or device.startswith("cuda"):
        import torch  # noqa: F401  (the torch backend imports it lazily: keep that out of timed calls)
    return OnnxModel(path, output="probs", device=device, io_binding=True if rehearse else None, **kwargs)


def backend(rehearse: bool = False) -> str:
    """Explainer backend: ``"auto"`` (torch on CUDA models, numpy on CPU) or ``"torch"`` to rehearse."""
    return "torch" if rehearse else "auto"


# -- the machine --------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """CPU, cores, memory, load, OS and the versions that decide the numbers."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        kib = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem = int(kib.group(1)) * 1024 if kib else None
    except OSError:
        pass
    try:
        providers = __import__("onnxruntime").get_available_providers()
    except Exception:  # pragma: no cover - onnxruntime missing
        providers = []
    ort_dist = "onnxruntime-gpu" if _version("onnxruntime-gpu") else "onnxruntime"
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_bytes": mem,
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("numpy", ort_dist, "torch", "torchvision", "scikit-image", "lime", "captum", "onnxplain")
        },
        "ort_providers": providers,
    }


def load_average() -> tuple[float, float, float] | None:
    return tuple(round(v, 2) for v in os.getloadavg()) if hasattr(os, "getloadavg") else None  # type: ignore[return-value]


def machine_markdown(info: Mapping[str, Any] | None = None) -> str:
    info = dict(info or machine())
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    mem = f"{info['memory_bytes'] / 2**30:.0f} GiB" if info.get("memory_bytes") else "?"
    return "\n".join(
        [
            f"- CPU: {info['cpu']}, {info['usable_cpus']} usable of {info['logical_cpus']} logical CPUs; RAM {mem}; "
            f"{info['os']}; Python {info['python']}",
            f"- Versions: {versions}",
            f"- ONNX Runtime providers: {', '.join(info['ort_providers']) or 'none'} (benchmarks run on CPU)",
        ]
    )


# -- benchmark models and inputs ------------------------------------------------------------------


def demo_onnx() -> Path:
    """The shipped demo MNIST CNN (1×28×28 [0,1] pixels → 10 logits)."""
    from onnxplain.demo import demo_onnx_path

    return Path(demo_onnx_path())


def resnet18_torch(seed: int = 0) -> Any:
    """torchvision ResNet-18, random weights (seeded), taking [0,1] pixels (ImageNet normalisation inside)."""
    import torch
    import torchvision

    from onnxplain.export.wrap import PixelSpaceModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torchvision.models.resnet18(weights=None, num_classes=1000)
    return PixelSpaceModel(net, mean=IMAGENET_MEAN, std=IMAGENET_STD, input_shape=(3, 224, 224)).eval()


def small224_torch(seed: int = 0) -> Any:
    """A small 3×224×224 CNN (random weights, seeded) for overhead- and memory-bound comparisons.

    Strided convolutions down to 14×14, global average pooling, 10 classes: ≈ 30 MFLOP per
    sample, so the explainers' own work (mask/noise generation, copies) is what gets measured.
    """
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Conv2d(3, 16, 7, stride=4, padding=3),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )
    return net.eval()


_MODELS: dict[str, tuple[Callable[[], Any], tuple[int, int, int], Any]] = {
    "resnet18": (resnet18_torch, (3, 224, 224), None),
    "small224": (small224_torch, (3, 224, 224), None),
}


def torch_model(name: str) -> Any:
    """The benchmark torch module ``name`` ("resnet18", "small224", "demo"), in eval mode."""
    if name == "demo":
        from onnxplain.demo import load_demo_torch

        return load_demo_torch()
    return _MODELS[name][0]()


def onnx_model_path(name: str) -> Path:
    """The ONNX file of benchmark model ``name``, exported once with ``onnxplain.export.export_onnx``.

    Exports are cached in ``$ONNXPLAIN_BENCH_CACHE`` (default: ``<tmp>/onnxplain-bench``; the
    files are large and never committed), keyed by the torch version.
    """
    if name == "demo":
        return demo_onnx()
    builder, shape, _ = _MODELS[name]
    torch_version = _version("torch") or "torch"
    path = CACHE_DIR / f"{name}-torch{torch_version}.onnx"
    if not path.exists():
        from onnxplain.export import export_onnx

        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        module = builder()
        # ImageNet normalisation, if any, is inside the module (PixelSpaceModel): export as is.
        export_onnx(module, path, shape, source=name)
    return path


def input_shape_of(name: str) -> tuple[int, int, int]:
    return (1, 28, 28) if name == "demo" else _MODELS[name][1]


def natural_image(size: int = 224) -> np.ndarray:
    """scikit-image's bundled ``chelsea`` photo, centre-cropped and resized: (3, size, size) in [0,1]."""
    from skimage import data, transform

    img = data.chelsea().astype(np.float32) / 255.0
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[top : top + side, left : left + side]
    img = transform.resize(img, (size, size), order=1, anti_aliasing=True).astype(np.float32)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def demo_digit(index: int = 0) -> np.ndarray:
    """One held-out MNIST digit shipped with the demo: (1, 28, 28) in [0,1]."""
    from onnxplain.demo import load_demo_digits

    x, _ = load_demo_digits()
    return x[index]


# -- statistics of maps ------------------------------------------------------------------------


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps (flattened)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


# -- publishing ---------------------------------------------------------------------------------


def command(argv: Sequence[str] | None = None, module: str | None = None) -> str:
    """The exact command that produced the numbers being published.

    Under ``python -m benchmarks`` the top-level command (set in ``$ONNXPLAIN_BENCH_COMMAND``) is
    named as well as the script's own invocation.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        module = spec.name if spec is not None else Path(sys.argv[0]).stem
    own = "python -m " + " ".join([module, *map(shlex.quote, args)])
    top = os.environ.get(COMMAND_ENV)
    return f"{top}  (ran: {own})" if top and top != own else own


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def fmt_s(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "—"
    if seconds < 0:
        return "−" + fmt_s(-seconds)
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.0f} MiB"


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN {name} (generated by python -m benchmarks; edits inside are overwritten) -->"


def end_marker(name: str) -> str:
    return f"<!-- END {name} -->"


def write_section(name: str, markdown: str, readme: Path = README) -> bool:
    """Replace the generated block ``name`` of the README with ``markdown``.

    The block lies between :func:`begin_marker` and :func:`end_marker` lines; when the README has
    no such block it is appended at the end (the script's own section). Nothing is written when
    ``$ONNXPLAIN_BENCH_NO_README`` is set. Returns True when the file changed.
    """
    if os.environ.get(NO_README_ENV):
        return False
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    begin, end = begin_marker(name), end_marker(name)
    block = f"{begin}\n{markdown.strip()}\n{end}"
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} [^\n]*-->\n.*?\n{re.escape(end)}", re.S)
    if pattern.search(text):
        new = pattern.sub(lambda _: block, text, count=1)
    else:
        new = text.rstrip("\n") + "\n\n" + block + "\n"
    if new == text:
        return False
    tmp = readme.with_suffix(".md.tmp")
    tmp.write_text(new)
    tmp.replace(readme)
    return True


def save_results(name: str, data: Mapping[str, Any]) -> Path:
    """Write a benchmark's raw numbers to ``benchmarks/results/<name>.json`` (with machine and command)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"command": command(), "machine": machine(), "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    payload.update(data)
    path.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
    return path


def publish(name: str, data: Mapping[str, Any], markdown: str, *, save: bool = True) -> int:
    """A script's ending: its raw numbers to ``results/<name>.json`` and its block of the README
    (unless ``save`` is False, e.g. a skipped comparison), the block printed; the exit status 0."""
    if save:
        save_results(name, data)
        write_section(name, markdown)
    print(markdown)
    return 0


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)


def load_line(before: Sequence[float] | None, after: Sequence[float] | None = None) -> str:
    """"load average 1-min a → b on N CPUs" for a section's footer."""
    cpus = os.cpu_count()
    if before is None:
        return ""
    if after is None:
        return f"load average (1 min) {before[0]:.2f} on {cpus} CPUs"
    return f"load average (1 min) {before[0]:.2f} → {after[0]:.2f} on {cpus} CPUs"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark harness helpers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--machine", action="store_true", help="print the machine description")
    parser.add_argument("--best-time", metavar="MODEL", help="best per-sample time of a benchmark model or .onnx path")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    if args.machine:
        print(machine_markdown())
    if args.best_time:
        name = args.best_time
        path = onnx_model_path(name) if name in ("demo", *_MODELS) else Path(name)
        shape = input_shape_of(name) if name in ("demo", *_MODELS) else None
        best = best_per_sample_time(path, shape)
        print(json.dumps(best.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
