"""What the four black-box explainers share: argument checks, explicands and targets,
baselines, the query budget, timing, and feeding perturbation blocks to the model."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.blackbox.sampling import BLOCK, Ops, blur
from onnxplain.errors import InvalidInputError, NonFiniteOutputError, QueryBudgetExceeded
from onnxplain.explanation import Explanation
from onnxplain.models.base import QueryModel, Target, as_batch, predict, preferred_batch_size

BaselineSpec = Any  # "zero" | float | "blur" | array broadcastable to (C,H,W) or (B,C,H,W)

PREFETCH: bool | None = None
"""Build the next call's queries on a helper thread while the model runs (numpy backend):
``None`` decides per explanation (:func:`prefetch_pays`), ``True``/``False`` force it."""

PREFETCH_BUILD_SHARE = 0.5
"""Prefetch on a busy host only when building a call's queries takes more than this share of
the call itself (see :func:`prefetch_pays`)."""

BLUR_SIZE = 31
BLUR_SIGMA = 5.0


# -- constructor checks -----------------------------------------------------------------------


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")
    return int(value)


def check_positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and value > 0
    ):
        raise InvalidInputError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInputError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}.")
    return value


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None:
        return None
    return check_positive_int("batch_size", batch_size)


def check_baseline_spec(baseline: BaselineSpec) -> BaselineSpec:
    """Validate a baseline given to a constructor (its shape is checked against x in explain)."""
    if isinstance(baseline, str):
        return check_choice("baseline", baseline, ("zero", "blur"))
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise InvalidInputError(f"a constant baseline must be finite, got {baseline!r}.")
        return float(baseline)
    try:
        arr = np.asarray(baseline, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"baseline must be 'zero', 'blur', a number or an array, not {type(baseline).__name__}."
        ) from exc
    if arr.ndim not in (3, 4):
        raise InvalidInputError(
            f"a baseline array must have shape (C,H,W) or (B,C,H,W), got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise InvalidInputError("the baseline array holds NaN or infinite values.")
    arr.setflags(write=False)
    return arr


def describe_baseline(baseline: BaselineSpec) -> Any:
    """JSON-friendly record of a baseline for ``Explanation.params``."""
    if isinstance(baseline, np.ndarray):
        return f"array{list(baseline.shape)}"
    if baseline == "blur":
        return f"blur({BLUR_SIZE},{BLUR_SIGMA})"
    return baseline


def resolve_baseline(baseline: BaselineSpec, batch: np.ndarray) -> np.ndarray:
    """The (B,C,H,W) float32 baseline x̂ of each explicand."""
    if isinstance(baseline, str):
        if baseline == "zero":
            return np.zeros_like(batch)
        return blur(batch, BLUR_SIZE, BLUR_SIGMA)
    if isinstance(baseline, float):
        return np.full_like(batch, baseline)
    arr = np.asarray(baseline, np.float32)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.shape[1:] != batch.shape[1:] or arr.shape[0] not in (1, batch.shape[0]):
        raise InvalidInputError(
            f"the baseline has shape {tuple(baseline.shape)} but the explicands have shape "
            f"{tuple(batch.shape[1:])} (batch of {batch.shape[0]})."
        )
    return np.ascontiguousarray(np.broadcast_to(arr, batch.shape), dtype=np.float32)


# -- explicands, targets, budget, time ------------------------------------------------------------


@dataclass
class Explicands:
    """The explicands of one ``explain`` call and what one forward pass on them told us."""

    x: np.ndarray  # (B,C,H,W) float32
    single: bool
    targets: np.ndarray  # (B,) int64
    scores: np.ndarray  # (B,) float64, f(x) for the target

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


def check_image_model(model: QueryModel) -> tuple[int, int, int]:
    shape = tuple(getattr(model, "input_shape", ()))
    if len(shape) != 3:
        raise InvalidInputError(
            f"image explainers need a model taking (C,H,W) samples; this one takes {shape}."
        )
    return shape  # type: ignore[return-value]


def check_budget(model: QueryModel, needed: int) -> None:
    """Fail before any query when the model's ``max_queries`` budget cannot cover ``needed``."""
    limit = getattr(model, "max_queries", None)
    if limit is None:
        return
    left = int(limit) - int(getattr(model, "n_queries", 0))
    if needed > left:
        raise QueryBudgetExceeded(
            f"this explanation needs {needed} queries but only {left} of the model's budget of "
            f"{limit} remain."
        )


def prepare(model: QueryModel, x: Any) -> tuple[np.ndarray, bool]:
    """``x`` as a (B,C,H,W) float32 batch for an image model, and whether it was one explicand."""
    check_image_model(model)
    batch, single = as_batch(x, model.input_shape)
    if not np.isfinite(batch).all():
        raise InvalidInputError("the explicand holds NaN or infinite values.")
    return batch, single


def query_explicands(model: QueryModel, batch: np.ndarray, single: bool, target: Target) -> Explicands:
    """One query per explicand: its target (top class if None) and f(x)."""
    targets, scores = predict(model, batch, target)
    return Explicands(batch, single, targets, scores)


def target_scores(model: QueryModel, batch: Any, targets: np.ndarray) -> np.ndarray:
    """f_t(z) for a (B·q, …) query batch laid out explicand-major: returns (B, q) float64."""
    out = np.asarray(model(batch))
    b = len(targets)
    out = out.reshape(b, -1, out.shape[-1])
    scores = np.take_along_axis(out, targets[:, None, None], axis=2)[..., 0].astype(np.float64)
    if not np.isfinite(scores).all():
        raise NonFiniteOutputError("the model returned non-finite scores for some perturbed queries.")
    return scores


class Clock:
    """Wall time and model time (the adapter's ``model_seconds`` when it keeps one)."""

    def __init__(self, model: QueryModel) -> None:
        self.model = model
        self.t0 = time.perf_counter()
        self.m0 = float(getattr(model, "model_seconds", 0.0))
        self.q0 = int(getattr(model, "n_queries", 0))

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def model_seconds(self) -> float:
        return float(getattr(self.model, "model_seconds", 0.0)) - self.m0


# -- streaming blocks -------------------------------------------------------------------------------


def chunks_of_blocks(n: int, model: QueryModel, batch_size: int | None, n_explicands: int) -> Iterator[list[int]]:
    """Block numbers grouped into model calls of about ``preferred_batch_size`` queries.

    One call carries every explicand's queries of its blocks, so several explicands can share a
    call when the model is small; a call never holds less than one block per explicand.
    """
    n_blocks = -(-n // BLOCK)
    per_call = preferred_batch_size(model, batch_size)
    blocks_per_call = max(1, per_call // (BLOCK * n_explicands))
    for start in range(0, n_blocks, blocks_per_call):
        yield list(range(start, min(start + blocks_per_call, n_blocks)))


def prefetch_pays(model: QueryModel, build_seconds: float, call_seconds: float) -> bool:
    """Whether building the next call's queries on a helper thread beats building them in turn.

    A model that does not compute on this host's CPUs (a remote endpoint, a CUDA session) leaves
    them free: always. A CPU model already uses every core (ONNX Runtime's intra-op pool): a
    helper thread then steals cycles from the model's parallel sections, and a descheduled worker
    stalls each section's barrier. Measured on 2 cores, that costs more than it saves unless the
    build is a large share of the call (``PREFETCH_BUILD_SHARE``): GEEX, GE or RISE queries of
    3×224×224 for a small CNN (build ≈ 5× the call: prefetch 8–12 % faster), but not LIME on a
    28×28 CNN (build ≈ 0.2× the call: prefetch 3–35 % slower across runs) nor GEEX on ResNet-18
    (≈ 0.05×: within ±4 %).
    """
    if PREFETCH is not None:
        return PREFETCH
    if not getattr(model, "uses_host_cpu", True):
        return True
    return build_seconds > PREFETCH_BUILD_SHARE * call_seconds


def stream(
    ops: Ops,
    model: QueryModel,
    n: int,
    explicands: Explicands,
    batch_size: int | None,
    make_block: Callable[[int, int, int], Any],
    write_queries: Callable[[Any, Any], None],
    consume: Callable[[Any, Any], None],
) -> None:
    """Drive one explanation: for each call, build its blocks, forward, hand back the scores.

    ``make_block(b, start, stop)`` draws block ``b`` (queries ``start:stop``);
    ``write_queries(block, out)`` fills ``out`` (B, stop-start, C, H, W) with its queries;
    ``consume(block, scores)`` receives the (B, stop-start) float64 target scores, called in
    block order (so accumulation never depends on how blocks were grouped into calls).

    The first call is built and run in turn, and both are timed; when :func:`prefetch_pays`
    (numpy backend), each further call's queries are then built on a helper thread while the
    model runs the previous call (numpy and ONNX Runtime release the GIL), into the other of two
    buffers. Results are identical either way (blocks are independent, and ``consume`` stays on
    the calling thread, in order). Memory: two calls' worth of queries.
    """
    b = explicands.n
    sample = tuple(explicands.x.shape[1:])
    targets = explicands.targets
    groups = list(chunks_of_blocks(n, model, batch_size, b))
    buffers: dict[tuple[int, int], Any] = {}

    def build(index: int) -> tuple[list[Any], list[tuple[int, int]], Any]:
        group = groups[index]
        spans = [(k * BLOCK, min((k + 1) * BLOCK, n)) for k in group]
        total = spans[-1][1] - spans[0][0]
        key = (index % 2, total)
        if key not in buffers:
            buffers[key] = ops.empty((b, total, *sample))
        buffer = buffers[key]
        blocks = []
        for k, (start, stop) in zip(group, spans, strict=True):
            block = make_block(k, start, stop)
            off = start - spans[0][0]
            write_queries(block, buffer[:, off : off + stop - start])
            blocks.append(block)
        return blocks, spans, buffer.reshape(b * total, *sample)

    def run(built: tuple[list[Any], list[tuple[int, int]], Any]) -> None:
        blocks, spans, queries = built
        scores = target_scores(model, queries, targets)
        for block, (start, stop) in zip(blocks, spans, strict=True):
            off = start - spans[0][0]
            consume(block, scores[:, off : off + stop - start])

    t0 = time.perf_counter()
    first = build(0)
    t1 = time.perf_counter()
    run(first)
    call_seconds = time.perf_counter() - t1
    if len(groups) < 2:
        return
    if ops.name != "numpy" or not prefetch_pays(model, t1 - t0, call_seconds):
        for index in range(1, len(groups)):
            run(build(index))
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxplain-queries") as pool:
        pending = pool.submit(build, 1)
        for index in range(1, len(groups)):
            built = pending.result()
            if index + 1 < len(groups):
                pending = pool.submit(build, index + 1)
            run(built)


def build_explanation(
    method: str,
    exp: Explicands,
    attributions: np.ndarray,
    params: dict[str, Any],
    clock: Clock,
    n_queries: int,
    baseline_scores: np.ndarray | None = None,
    diagnostics: dict[str, np.ndarray | Any] | None = None,
) -> Explanation:
    """One Explanation for the call: per-explicand values for a batch, scalars for one explicand.

    Diagnostics given as (B,) arrays become scalars for a single explicand.
    """
    diagnostics = dict(diagnostics or {})
    if exp.single:
        return Explanation(
            attributions=attributions[0],
            method=method,
            target=int(exp.targets[0]),
            score=float(exp.scores[0]),
            baseline_score=None if baseline_scores is None else float(baseline_scores[0]),
            params=params,
            n_queries=n_queries,
            seconds=clock.seconds(),
            model_seconds=clock.model_seconds(),
            diagnostics={k: (v[0].item() if isinstance(v, np.ndarray) else v) for k, v in diagnostics.items()},
        )
    return Explanation(
        attributions=attributions,
        method=method,
        target=exp.targets,
        score=exp.scores,
        baseline_score=baseline_scores,
        params=params,
        n_queries=n_queries,
        seconds=clock.seconds(),
        model_seconds=clock.model_seconds(),
        diagnostics=diagnostics,
    )
