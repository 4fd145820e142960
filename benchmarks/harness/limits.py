"""The model's own speed limit: a plain ONNX Runtime session swept over batch sizes."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


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


def plain_session(
    model: str | os.PathLike[str] | bytes, threads: int | None = None, device: str = "cpu"
) -> Any:
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
