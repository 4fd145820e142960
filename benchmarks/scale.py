"""Scale-out: explain_dataset throughput with 1 vs 2 Ray workers, and RemoteModel's cost per query.

1. **Ray Data, 1 vs 2 workers** (``explain_dataset`` with ``num_workers`` 1 and 2, one CPU and one
   ONNX Runtime intra-op thread per actor, on a local 2-CPU Ray cluster), with the in-process
   runner (``num_workers=0``, ONNX Runtime's default threads) as the reference. GEEX on the demo
   MNIST CNN, ``--images`` digits, ``--queries`` queries each. Runs interleaved, fresh output
   directory each time. Reported: wall time (actor start-up included), images/s over the wall
   time, and *steady* images/s: images finished per second from the moment the last worker has
   finished its first image (actor start-up left out).
2. **RemoteModel vs OnnxModel on loopback**: the demo model served by ``python -m
   onnxplain.serve`` in its own process (1 ORT thread) vs a local ``OnnxModel`` (1 ORT thread),
   both queried with the same batches; the difference per sample is the protocol's overhead
   (HTTP, encoding, copies). Binary tensor extension and JSON, batch sizes 1 to 256; plus a whole
   GEEX explanation through each.

    python -m benchmarks.scale [--images 48] [--queries 2000] [--repeats 3] [--mnist PATH]
                               [--skip-ray] [--skip-remote]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness as h

NAME = "scale"


def digits(n: int, mnist: Path | None) -> np.ndarray:
    """``n`` digits (N, 1, 28, 28) in [0,1]: held-out MNIST test digits, else the demo digits tiled."""
    if mnist is not None:
        with np.load(mnist) as data:
            idx = data["heldout_idx"][:n] if "heldout_idx" in data else np.arange(n)
            return (data["x"][idx].astype(np.float32) / 255.0)[:, None]
    from onnxplain.demo import load_demo_digits

    x = load_demo_digits()[0]
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


# -- 1. Ray ------------------------------------------------------------------------------------


def steady_rate(rows: list[dict[str, Any]]) -> float:
    """Images/s once every worker is up: from the last worker's first finish to the last finish."""
    firsts: dict[str, float] = {}
    for r in rows:
        firsts[r["worker"]] = min(firsts.get(r["worker"], float("inf")), r["finished_at"])
    t0 = max(firsts.values())
    later = [r["finished_at"] for r in rows if r["finished_at"] > t0]
    return len(later) / (max(later) - t0) if later else float("nan")


def ray_part(x: np.ndarray, n_queries: int, repeats: int) -> dict[str, Any]:
    import ray

    from onnxplain.distributed import MethodSpec, OnnxModelSpec, explain_dataset

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level=logging.WARNING)
    spec = OnnxModelSpec(str(h.demo_onnx()), batch_size=64)
    method = MethodSpec("geex", {"n_queries": n_queries})
    root = Path(tempfile.mkdtemp(prefix="onnxplain-scale-"))
    steady: dict[str, list[float]] = {}

    def case(name: str, workers: int) -> Callable[[], Any]:
        def run() -> Any:
            out = root / f"{workers}-{time.monotonic_ns()}"
            result = explain_dataset(x, spec, method, out=out, num_workers=workers, seed=0, resume=False)
            assert len(result.ok) == len(x), result.errors[:1]
            steady.setdefault(name, []).append(steady_rate(result.rows))
            shutil.rmtree(out, ignore_errors=True)
            return result

        return run

    cases = {
        "in-process": case("in-process", 0),
        "1 worker": case("1 worker", 1),
        "2 workers": case("2 workers", 2),
    }
    small = x[:4]

    def warm(workers: int) -> Callable[[], Any]:
        return lambda: explain_dataset(
            small, spec, method, out=root / f"warm{workers}", num_workers=workers, resume=False
        )

    try:
        timings, _ = h.interleave(
            cases,
            repeats=repeats,
            warmup=1,
            warmup_cases={"in-process": warm(0), "1 worker": warm(1), "2 workers": warm(2)},
        )
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    out = {}
    for label, t in timings.items():
        s = steady[label]  # one value per timed run (warm-ups do not record)
        out[label] = {"timing": t.to_dict(), "steady_images_per_s": s, "steady_median": float(np.median(s))}
    return out


# -- 2. Remote ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def remote_part(n_queries: int, repeats: int) -> dict[str, Any]:
    from onnxplain.blackbox import GEEX
    from onnxplain.models import RemoteModel
    from onnxplain.models.onnx import OnnxModel

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "onnxplain.serve",
            str(h.demo_onnx()),
            "--name",
            "mnist",
            "--port",
            str(port),
            "--threads",
            "1",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        server.stdout.readline()  # "serving … at …"
        url = f"http://127.0.0.1:{port}/v2/models/mnist"
        deadline = time.monotonic() + 30
        while True:
            try:
                RemoteModel.from_url(url, retries=0).close()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        rng = np.random.default_rng(0)
        total = 512
        x = rng.random((total, 1, 28, 28), dtype=np.float32)
        rows = []
        for batch in (1, 16, 64, 256):
            local = OnnxModel(
                h.demo_onnx(), device="cpu", batch_size=batch, intra_op_threads=1, output="logits"
            )
            binary = RemoteModel.from_url(url, batch_size=batch, concurrency=1, binary=True, output="logits")
            as_json = RemoteModel.from_url(
                url, batch_size=batch, concurrency=1, binary=False, output="logits"
            )
            n = total if batch > 1 else 128

            def sweep(model: Any, n: int = n, batch: int = batch) -> None:
                for s in range(0, n, batch):
                    model(x[s : s + batch])

            timings, _ = h.interleave(
                {
                    name: (lambda m=m: sweep(m))
                    for name, m in (("local", local), ("binary", binary), ("json", as_json))
                },
                repeats=repeats,
            )
            per = {k: t.median / n for k, t in timings.items()}
            rows.append(
                {
                    "batch": batch,
                    "samples": n,
                    **{f"{k}_per_sample": v for k, v in per.items()},
                    "timings": {k: t.to_dict() for k, t in timings.items()},
                }
            )
            binary.close()
            as_json.close()

        digit = h.demo_digit(0)
        local = OnnxModel(h.demo_onnx(), device="cpu", batch_size=64, intra_op_threads=1)
        remote1 = RemoteModel.from_url(url, batch_size=64, concurrency=1)
        remote2 = RemoteModel.from_url(url, batch_size=64, concurrency=2)
        geex = GEEX(n_queries=n_queries, seed=0)
        g_timings, g_results = h.interleave(
            {
                "local": lambda: geex.explain(local, digit),
                "remote c=1": lambda: geex.explain(remote1, digit),
                "remote c=2": lambda: geex.explain(remote2, digit),
            },
            repeats=repeats,
        )
        same = all(
            np.array_equal(g_results["local"].attributions, g_results[k].attributions)
            for k in ("remote c=1", "remote c=2")
        )
        remote1.close()
        remote2.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {"batches": rows, "geex": {k: t.to_dict() for k, t in g_timings.items()}, "geex_identical": same}


# -- report ------------------------------------------------------------------------------------


def markdown(
    args: argparse.Namespace,
    ray_res: dict[str, Any] | None,
    remote_res: dict[str, Any] | None,
    loads: tuple[Any, Any],
) -> str:
    parts = [
        "Command: `" + h.command() + "`",
        "",
        "Absolute numbers on a shared machine are noisy (the load average is given below); the "
        "ratios were measured side by side, interleaved.",
    ]
    if ray_res is not None:
        one = ray_res["1 worker"]
        two = ray_res["2 workers"]
        rows = []
        for label, r in ray_res.items():
            wall = r["timing"]["median"]
            rows.append(
                [
                    label,
                    h.fmt_s(wall),
                    f"{args.images / wall:.2f}",
                    f"{r['steady_median']:.2f}",
                    f"{one['timing']['median'] / wall:.2f}×",
                    f"{r['steady_median'] / one['steady_median']:.2f}×",
                ]
            )
        parts += [
            "",
            f"**`explain_dataset`, GEEX {args.queries} queries × {args.images} MNIST digits, demo CNN**, "
            f"local Ray cluster with 2 CPUs (1 CPU and 1 ORT thread per actor); in-process = "
            f"`num_workers=0` with ORT's default threads. Medians of {args.repeats} runs.",
            "",
            h.md_table(
                [
                    "runner",
                    "wall (incl. actor start)",
                    "images/s (wall)",
                    "images/s (steady)",
                    "wall speed-up vs 1 worker",
                    "steady speed-up vs 1 worker",
                ],
                rows,
            ),
            "",
            f"2 workers vs 1: **{one['timing']['median'] / two['timing']['median']:.2f}×** on wall time, "
            f"**{two['steady_median'] / one['steady_median']:.2f}×** in steady state, on 2 cores that "
            "also served other jobs. The ideal is 2×; the start-up of the actors (a Python process, "
            "imports, one ONNX Runtime session each) is a fixed cost of a few seconds per run.",
        ]
    if remote_res is not None:
        rows = []
        for r in remote_res["batches"]:
            loc, b, j = r["local_per_sample"], r["binary_per_sample"], r["json_per_sample"]
            rows.append(
                [
                    r["batch"],
                    h.fmt_s(loc),
                    h.fmt_s(b),
                    h.fmt_s(b - loc),
                    f"{b / loc:.2f}×",
                    h.fmt_s(j),
                    h.fmt_s(j - loc),
                    f"{j / loc:.2f}×",
                ]
            )
        g = remote_res["geex"]
        parts += [
            "",
            "**RemoteModel on loopback vs local OnnxModel** (demo CNN; server = `python -m onnxplain.serve "
            "--threads 1` in its own process; local = `OnnxModel(intra_op_threads=1)`; per sample, "
            f"medians of {args.repeats} interleaved sweeps, `concurrency=1`):",
            "",
            h.md_table(
                ["batch", "local", "remote binary", "overhead", "ratio", "remote JSON", "overhead", "ratio"],
                rows,
            ),
            "",
            f"Whole GEEX explanation ({args.queries} queries, batch 64): local {h.fmt_s(g['local']['median'])}, "
            f"remote {h.fmt_s(g['remote c=1']['median'])} (concurrency 1), "
            f"{h.fmt_s(g['remote c=2']['median'])} (concurrency 2); attributions bit-identical: "
            f"{remote_res['geex_identical']}.",
        ]
    parts += ["", h.load_line(*loads)]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--mnist", type=Path, default=None, help="mnist_test.npz (default: the demo digits, tiled)"
    )
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--skip-remote", action="store_true")
    args = parser.parse_args(argv)
    before = h.load_average()
    ray_res = None
    if not args.skip_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print(
                "ray is not installed (pip install 'onnxplain[ray]'): skipping the Ray part", file=sys.stderr
            )
        else:
            ray_res = ray_part(digits(args.images, args.mnist), args.queries, args.repeats)
    remote_res = None if args.skip_remote else remote_part(args.queries, args.repeats)
    after = h.load_average()
    text = markdown(args, ray_res, remote_res, (before, after))
    print(text)
    h.save_results(NAME, {"ray": ray_res, "remote": remote_res, "args": vars(args)})
    h.write_section(NAME, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
