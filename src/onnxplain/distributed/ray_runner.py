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
from collections.abc import Iterator
from typing import Any

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


def _root_cause(exc: BaseException) -> BaseException:
    """Ray wraps a worker's exception (RayTaskError, ActorDiedError, …); find ours inside."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OnnxplainError):
            return e
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return exc


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
        all_ids = [r["id"] for r in images]
        n_skipped = 0  # the caller already left finished images out
    else:
        columns = set(images.columns())
        if "id" not in columns or not columns & {"image", "path"}:
            raise InvalidInputError(
                "a ray.data.Dataset of images needs an 'id' column and an 'image' or 'path' column."
            )
        all_ids = [str(r["id"]) for r in images.select_columns(["id"]).iter_rows()]
        if len(set(all_ids)) != len(all_ids):
            raise InvalidInputError("image ids must be unique.")
        done = store.finished(all_ids) if resume else set()
        n_skipped = len(done)
        dataset = images.filter(lambda row: str(row["id"]) not in done) if done else images
    n_computed = len(all_ids) - n_skipped
    if n_computed == 0:
        return all_ids, 0, n_skipped

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
        },
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker or None,
    )
    try:
        with _progress_bars(ray, progress):
            for _ in explained.iter_batches(batch_size=None):
                pass  # the actors write the results; we only drive the pipeline
    except Exception as exc:
        cause = _root_cause(exc)
        if cause is not exc:
            raise cause from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxplainError(f"the Ray run failed: {first}") from exc
    return all_ids, n_computed, n_skipped
