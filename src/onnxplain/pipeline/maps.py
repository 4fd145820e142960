"""Every (image, method) map of a run, computed or reused through the one result cache.

A :class:`MethodRun` is a configured explainer with the model it explains (the ONNX/remote
QueryModel for black-box methods, the torch module for white-box ones) and the identity of that
model. :func:`explain_maps` plans which maps the cache already holds (same settings key: model
identity, method parameters and seed, the explicand's values, the target), lets the executor
compute the others (in this process, or on the dataset runner), writes each map's files, then
commits its record. Nothing is printed: progress goes to a :class:`~.progress.Progress`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from onnxplain.errors import NonFiniteOutputError
from onnxplain.explanation import Explanation
from onnxplain.pipeline.cache import Record, ResultCache, array_digest, settings_key
from onnxplain.pipeline.progress import Progress
from onnxplain.registry import Kind, method_kind

RECORD_FIELDS = ("method", "target", "score", "baseline_score", "n_queries", "n_backward", "seconds",
                 "model_seconds", "params", "diagnostics", "completeness_gap", "shape")
"""The parts of an Explanation every result record carries."""


@dataclass
class MethodRun:
    """One configured method, the model it explains and what identifies that model."""

    name: str
    explainer: Any
    model: Any
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        return method_kind(self.name)

    def queries(self, input_shape: tuple[int, ...]) -> int | None:
        """Queries one explicand costs (declared by black-box methods; None for white-box ones)."""
        return self.explainer.queries_per_explicand(input_shape) if self.kind == "black-box" else None

    def check(self, batch: np.ndarray) -> None:
        """What can be checked before any map: the baseline of a method that declares one must fit
        the explicands (``uses_baseline`` methods hold a parsed ``baseline``)."""
        if not self.explainer.uses_baseline:
            return
        if self.kind == "black-box":  # a black-box method may resolve its baseline per call
            self.explainer.baseline_for(batch).resolve(batch)
        else:
            self.explainer.baseline.resolve(batch)

    def key(self, x: np.ndarray, target: int) -> str:
        """The settings key of this method's map of ``x`` for ``target``."""
        return settings_key({**self.identity, "method": self.name, "params": self.explainer.params(),
                             "explicand": array_digest(x), "target": int(target)})


class Executor(Protocol):
    """Computes maps: :meth:`prepare` learns what will be asked (by method: image indices) and the
    targets, before :meth:`explain` is asked for each."""

    def prepare(self, runs: list[MethodRun], todo: dict[str, list[int]], targets: np.ndarray) -> None: ...

    def explain(self, run: MethodRun, i: int, x: np.ndarray, target: int) -> Explanation: ...


class LocalExecutor:
    """Explains in this process, one explicand at a time."""

    def prepare(self, runs: list[MethodRun], todo: dict[str, list[int]], targets: np.ndarray) -> None:
        pass

    def explain(self, run: MethodRun, i: int, x: np.ndarray, target: int) -> Explanation:
        return run.explainer.explain(run.model, x, target=target)


@dataclass
class MapSet:
    """One method's maps of every explicand (B,C,H,W) float32, their records and how many were reused."""

    maps: np.ndarray
    records: list[Record]
    reused: int = 0


@dataclass
class MapOutputs:
    """Where a run's maps go: ``files(id, method)`` names them (relative to the cache root),
    ``write(files, explanation, i)`` writes them; ``extra(i)`` adds fields to every record of
    explicand ``i``."""

    files: Callable[[str, str], dict[str, str]]
    write: Callable[[dict[str, str], Explanation, int], None]
    extra: Callable[[int], dict[str, Any]] = lambda i: {}


def checked_attributions(exp: Explanation, shape: tuple[int, ...], method: str) -> np.ndarray:
    """The map as float32 of the explicand's shape; non-finite values are refused."""
    a = np.asarray(exp.attributions, dtype=np.float32)
    if a.shape != shape:
        raise RuntimeError(f"{method} returned attributions of shape {a.shape}, expected {shape}.")
    if not np.isfinite(a).all():
        raise NonFiniteOutputError(f"{method} produced non-finite attributions (the model's scores may overflow).")
    return a


def load_map(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """A saved ``.npy`` map if it is readable, of ``shape`` and finite; else None (recompute it)."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return a.astype(np.float32) if a.shape == shape and np.isfinite(a).all() else None


def map_record(exp: Explanation, run: MethodRun, item: str, files: dict[str, str], key: str, wall: float) -> Record:
    d = exp.to_dict()
    return {
        **{k: d.get(k) for k in RECORD_FIELDS},
        "id": item, "method": run.name, "kind": run.kind, "target": int(d["target"]),
        "wall_seconds": wall, "files": files, "settings_key": key,
    }


def explain_maps(
    runs: list[MethodRun],
    batch: np.ndarray,
    ids: list[str],
    targets: np.ndarray,
    cache: ResultCache,
    outputs: MapOutputs,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> dict[str, MapSet]:
    """Every method's map of every explicand (image-major order), reused or computed and saved."""
    executor = executor or LocalExecutor()
    progress = progress or Progress()
    sets = {run.name: MapSet(np.zeros_like(batch, dtype=np.float32), [None] * len(batch)) for run in runs}
    plan = []
    for i, x in enumerate(batch):
        for run in runs:
            key = run.key(x, int(targets[i]))
            rec = cache.lookup(ids[i], run.name, key)
            a = None if rec is None else load_map(cache.root / rec["files"]["npy"], x.shape)
            plan.append((i, run, key, rec if a is not None else None, a))
    executor.prepare(runs, _todo(plan), targets)
    progress.start(len(plan), "maps", to_compute=sum(1 for step in plan if step[3] is None))
    try:
        for i, run, key, rec, a in plan:
            target_set = sets[run.name]
            if rec is not None:
                target_set.maps[i], target_set.records[i] = a, {**rec, **outputs.extra(i)}
                cache.reuse(target_set.records[i])
                target_set.reused += 1
                progress.finished(ids[i], run.name, seconds=0.0, reused=True)
                continue
            target_set.maps[i], target_set.records[i] = _compute(run, i, batch[i], int(targets[i]), key, ids[i],
                                                                  cache, outputs, executor, progress)
    finally:
        progress.close()
    return sets


def _todo(plan: list[tuple[Any, ...]]) -> dict[str, list[int]]:
    todo: dict[str, list[int]] = {}
    for i, run, _, rec, _ in plan:
        if rec is None:
            todo.setdefault(run.name, []).append(i)
    return todo


def _compute(
    run: MethodRun, i: int, x: np.ndarray, target: int, key: str, item: str,
    cache: ResultCache, outputs: MapOutputs, executor: Executor, progress: Progress,
) -> tuple[np.ndarray, Record]:
    """One map: explain, check, write the files, commit the record (in that order)."""
    t0 = time.perf_counter()
    with progress.item(item, run.name, queries=run.queries(tuple(x.shape)), model=run.model):
        exp = executor.explain(run, i, x, target)
    wall = time.perf_counter() - t0
    a = checked_attributions(exp, tuple(x.shape), run.name)
    files = outputs.files(item, run.name)
    outputs.write(files, exp, i)
    record = {**map_record(exp, run, item, files, key, wall), **outputs.extra(i)}
    cache.commit(record)
    progress.finished(item, run.name, seconds=wall, reused=False)
    return a, record
