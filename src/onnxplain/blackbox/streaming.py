"""Feeding perturbation blocks to a model: grouping blocks into calls, building the next call's
queries while the model runs, handing the target scores back in block order."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from onnxplain.blackbox.sampling import BLOCK, Ops
from onnxplain.errors import NonFiniteOutputError
from onnxplain.models.base import InstrumentedModel, QueryModel, preferred_batch_size

PREFETCH: bool | None = None
"""Build the next call's queries on a helper thread while the model runs (numpy backend):
``None`` decides per explanation (:func:`prefetch_pays`), ``True``/``False`` force it."""

PREFETCH_BUILD_SHARE = 0.5
"""Prefetch on a busy host only when building a call's queries takes more than this share of
the call itself (see :func:`prefetch_pays`)."""


class Perturbations(Protocol):
    """One explanation's perturbed queries, drawn, written and consumed block by block.

    ``n`` is the number of perturbed queries per explicand. Block ``k`` holds queries
    ``start:stop`` (:data:`~onnxplain.blackbox.sampling.BLOCK` of them, the last one shorter).
    """

    n: int

    def draw(self, k: int, start: int, stop: int) -> Any:
        """Draw block ``k`` from its own seeded generator."""

    def write(self, block: Any, out: Any) -> None:
        """Fill ``out`` (B, stop − start, C, H, W) with the block's queries for every explicand."""

    def consume(self, block: Any, scores: np.ndarray) -> None:
        """Take the block's (B, stop − start) float64 target scores; called in block order."""


def target_scores(model: QueryModel, batch: Any, targets: np.ndarray) -> np.ndarray:
    """f_t(z) for a (B·q, …) query batch laid out explicand-major: returns (B, q) float64."""
    out = np.asarray(model(batch))
    b = len(targets)
    out = out.reshape(b, -1, out.shape[-1])
    scores = np.take_along_axis(out, targets[:, None, None], axis=2)[..., 0].astype(np.float64)
    if not np.isfinite(scores).all():
        raise NonFiniteOutputError("the model returned non-finite scores for some perturbed queries.")
    return scores


def chunks_of_blocks(n: int, model: QueryModel, queries_per_call: int | None, n_explicands: int) -> list[list[int]]:
    """Block numbers grouped into model calls of about ``preferred_batch_size`` queries.

    One call carries every explicand's queries of its blocks, so several explicands can share a
    call when the model is small; a call never holds less than one block per explicand.
    """
    n_blocks = -(-n // BLOCK)
    per_call = preferred_batch_size(model, queries_per_call)
    blocks_per_call = max(1, per_call // (BLOCK * n_explicands))
    return [list(range(s, min(s + blocks_per_call, n_blocks))) for s in range(0, n_blocks, blocks_per_call)]


def prefetch_pays(model: QueryModel, build_seconds: float, call_seconds: float) -> bool:
    """Whether building the next call's queries on a helper thread beats building them in turn.

    A model that does not compute on this host's CPUs (a remote endpoint, a CUDA session) leaves
    them free: always. A CPU model already uses every core (ONNX Runtime's intra-op pool): a
    helper thread then steals cycles from the model's parallel sections, and a descheduled worker
    stalls each section's barrier, so it pays only when building the queries is a large share of
    the call (:data:`PREFETCH_BUILD_SHARE`; measurements in ``benchmarks/README.md``, "Prefetching
    the next call's queries").
    """
    if PREFETCH is not None:
        return PREFETCH
    if isinstance(model, InstrumentedModel) and not model.uses_host_cpu:
        return True
    return build_seconds > PREFETCH_BUILD_SHARE * call_seconds


class _Calls:
    """The model calls of one explanation: which blocks each holds, and two reusable buffers."""

    def __init__(self, ops: Ops, perturbations: Perturbations, x: np.ndarray, groups: list[list[int]]) -> None:
        self.ops, self.p, self.groups = ops, perturbations, groups
        self.b = int(x.shape[0])
        self.sample = tuple(x.shape[1:])
        self.buffers: dict[tuple[int, int], Any] = {}

    def build(self, index: int) -> tuple[list[Any], list[tuple[int, int]], Any]:
        """Draw and write the queries of call ``index`` into buffer ``index % 2``."""
        n = self.p.n
        group = self.groups[index]
        spans = [(k * BLOCK, min((k + 1) * BLOCK, n)) for k in group]
        total = spans[-1][1] - spans[0][0]
        key = (index % 2, total)
        if key not in self.buffers:
            self.buffers[key] = self.ops.empty((self.b, total, *self.sample))
        buffer = self.buffers[key]
        blocks = []
        for k, (start, stop) in zip(group, spans, strict=True):
            block = self.p.draw(k, start, stop)
            off = start - spans[0][0]
            self.p.write(block, buffer[:, off : off + stop - start])
            blocks.append(block)
        return blocks, spans, buffer.reshape(self.b * total, *self.sample)

    def run(self, model: QueryModel, targets: np.ndarray, built: tuple[list[Any], list[tuple[int, int]], Any]) -> None:
        blocks, spans, queries = built
        scores = target_scores(model, queries, targets)
        for block, (start, stop) in zip(blocks, spans, strict=True):
            off = start - spans[0][0]
            self.p.consume(block, scores[:, off : off + stop - start])


def stream(
    ops: Ops,
    model: QueryModel,
    perturbations: Perturbations,
    x: np.ndarray,
    targets: np.ndarray,
    queries_per_call: int | None,
) -> None:
    """Drive one explanation: for each call, build its blocks, forward, hand back the scores.

    The first call is built and run in turn, and both are timed; when :func:`prefetch_pays`
    (numpy backend), each further call's queries are then built on a helper thread while the
    model runs the previous call (numpy and ONNX Runtime release the GIL), into the other of two
    buffers. Results are identical either way (blocks are independent, and ``consume`` stays on
    the calling thread, in order). Memory: two calls' worth of queries.
    """
    calls = _Calls(ops, perturbations, x, chunks_of_blocks(perturbations.n, model, queries_per_call, len(x)))
    t0 = time.perf_counter()
    first = calls.build(0)
    t1 = time.perf_counter()
    calls.run(model, targets, first)
    call_seconds = time.perf_counter() - t1
    rest = range(1, len(calls.groups))
    if not rest:
        return
    if ops.name != "numpy" or not prefetch_pays(model, t1 - t0, call_seconds):
        for index in rest:
            calls.run(model, targets, calls.build(index))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxplain-queries") as pool:
        pending = pool.submit(calls.build, 1)
        for index in rest:
            built = pending.result()
            if index + 1 < len(calls.groups):
                pending = pool.submit(calls.build, index + 1)
            calls.run(model, targets, built)
