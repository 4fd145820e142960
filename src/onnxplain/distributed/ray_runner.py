"""The Ray Data backend of :func:`~onnxplain.distributed.explain_dataset` (needs ``onnxplain[ray]``).

``map_batches`` over the images with an actor pool (``compute=ActorPoolStrategy(size=n)``, the
Ray ≥ 2.51 API): each actor is an :class:`~onnxplain.distributed.worker.ExplainWorker` that
builds its own model from the picklable spec once, with ONNX Runtime's intra-op threads capped
to the actor's CPUs, and writes each image's npz + row itself, so a killed driver leaves every
finished image on disk. Ray gives a GPU actor its own ``CUDA_VISIBLE_DEVICES``, hence
``device="cuda"`` (index 0) inside the actor.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from onnxplain import errors
from onnxplain.distributed.specs import MethodSpec, ModelSpec
from onnxplain.distributed.store import ResultStore
from onnxplain.distributed.worker import ExplainWorker
from onnxplain.errors import InvalidInputError, OnnxplainError

__all__ = ["run_on_ray"]

# Blocks per run: one per image up to this many, so the pool balances images across actors.
_MAX_BLOCKS = 2000


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise OnnxplainError(
            "the Ray backend needs Ray Data: pip install 'onnxplain[ray]' (ray[data] >= 2.51)."
        ) from exc
    return ray


@contextlib.contextmanager
def _progress_bars(ray: Any, enabled: bool) -> Iterator[None]:
    ctx = ray.data.DataContext.get_current()
    before = ctx.enable_progress_bars
    ctx.enable_progress_bars = enabled
    try:
        yield
    finally:
        ctx.enable_progress_bars = before


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LAST_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exceeded)): (.+)$", re.MULTILINE)


def _fatal(message: str) -> OnnxplainError:
    """Rebuild the worker's onnxplain error (``"ModelLoadError: text"``) in the driver."""
    name, _, text = message.partition(": ")
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, OnnxplainError):
        return cls(text)
    return OnnxplainError(f"a Ray worker could not start: {message}")


def _summarise(exc: BaseException) -> str:
    """The last ``SomeError: message`` line of a Ray-wrapped traceback, without colour codes."""
    text = _ANSI.sub("", str(exc))
    found = _LAST_ERROR.findall(text)
    if found:
        return f"{found[-1][0].rsplit('.', 1)[-1]}: {found[-1][1].strip()}"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def run_on_ray(
    images: Any,
    model: ModelSpec,
    method: MethodSpec,
    *,
    store: ResultStore,
    seed: int,
    run_id: str,
    num_workers: int,
    gpus_per_worker: float,
    cpus_per_worker: float,
    threads: int,
    resume: bool,
    progress: bool,
) -> tuple[list[str], int, int]:
    """Explain ``images`` (a list of row dicts or a ``ray.data.Dataset``) on an actor pool.

    Returns ``(all ids, n_computed, n_skipped)``.
    """
    ray = _import_ray()
    from ray.data import ActorPoolStrategy

    if isinstance(images, list):
        dataset = ray.data.from_items(images, override_num_blocks=max(1, min(len(images), _MAX_BLOCKS)))
    else:
        columns = set(images.columns())
        if "id" not in columns or not columns & {"image", "path"}:
            raise InvalidInputError(
                "a ray.data.Dataset of images needs an 'id' column and an 'image' or 'path' column."
            )
        # No driver-side filter for resume: a filter is a CPU task that can starve behind an actor
        # pool holding every CPU; the workers skip finished images themselves (a stat and a read).
        dataset = images

    explained = dataset.map_batches(
        ExplainWorker,
        batch_size=1,
        compute=ActorPoolStrategy(size=num_workers),
        fn_constructor_kwargs={
            "model_spec": model,
            "method_spec": method,
            "seed": seed,
            "out": str(store.root.resolve()),
            "run_id": run_id,
            "device": "cuda" if gpus_per_worker > 0 else "cpu",
            "threads": threads,
            "defer_errors": True,
            "skip_finished": resume,
        },
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker or None,
    )
    fatal: str | None = None
    seen: list[str] = []
    n_skipped = 0
    try:
        with _progress_bars(ray, progress):
            # the actors write the results; the driver only pulls the pipeline and watches statuses
            for batch in explained.iter_batches(batch_size=None, batch_format="numpy"):
                statuses = [str(s) for s in batch["status"]]
                bad = [str(e) for s, e in zip(statuses, batch["error"], strict=True) if s == "fatal"]
                if bad:
                    fatal = bad[0]
                    break
                seen.extend(str(i) for i in batch["id"])
                n_skipped += statuses.count("skipped")
    except OnnxplainError:
        raise
    except Exception as exc:
        raise OnnxplainError(f"the Ray run failed: {_summarise(exc)}") from exc
    if fatal is not None:
        raise _fatal(fatal)
    if len(set(seen)) != len(seen):
        twice = sorted({i for i in seen if seen.count(i) > 1})[:3]
        raise InvalidInputError(
            f"image ids must be unique; {', '.join(map(repr, twice))} occur more than once."
        )
    return seen, len(seen) - n_skipped, n_skipped
