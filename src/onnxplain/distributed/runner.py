"""``explain_dataset``: explain many images with one method, resumably, in-process or on Ray.

Every image is explained independently with its own seed ``image_seed(seed, id)``, so the set of
results is the same whatever the backend, the number of workers or the order of completion.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain.checks import (
    check_bool,
    check_float_array,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_targets,
)
from onnxplain.distributed.specs import (
    MethodSpec,
    ModelSpec,
    as_method_spec,
    as_model_spec,
)
from onnxplain.distributed.store import ResultStore, check_id
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.explanation import Explanation

__all__ = ["DatasetResult", "explain_dataset", "run_config"]

Images = Any  # np.ndarray (N,C,H,W) | Sequence[path | array] | Mapping[id, path | array] | ray.data.Dataset


@dataclass
class DatasetResult:
    """What a run left in ``out``: the rows of its images (sorted by id) and what it did.

    Attributes:
        out: the run directory (layout in :mod:`onnxplain.distributed.store`).
        rows: one dict per image: ``id``, ``status`` ("ok"/"error"), ``seed``, ``target``,
            ``score``, ``n_queries``, ``seconds``, ``file`` (npz, relative to ``out``) or ``error``.
        n_computed: images explained (or failed) by this run.
        n_skipped: images already finished before this run (resume).
        seconds: wall time of the run.
    """

    out: Path
    rows: list[dict[str, Any]]
    n_computed: int
    n_skipped: int
    seconds: float
    backend: str = "local"
    num_workers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") == "ok"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") != "ok"]

    def load(self, image_id: str) -> Explanation:
        """The saved Explanation of one finished image."""
        for row in self.rows:
            if row["id"] == image_id:
                if row.get("status") != "ok":
                    raise InvalidInputError(f"image {image_id!r} has no explanation: {row.get('error')}.")
                return Explanation.load(self.out / row["file"])
        raise InvalidInputError(f"image {image_id!r} is not part of this run.")


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _normalise_rows(images: Images, ids: Sequence[Any] | None, targets: Any) -> list[dict[str, Any]]:
    """Rows ``{"id", "image"|"path", "target"}`` (target -1 = the model's top class)."""
    if isinstance(images, Mapping):
        if ids is not None:
            raise InvalidInputError("ids= cannot be combined with a mapping of id -> image.")
        ids = list(images.keys())
        items = list(images.values())
    elif isinstance(images, np.ndarray):
        if images.ndim < 2 or len(images) == 0:
            raise InvalidInputError(
                f"images must be a non-empty batch (N, C, H, W), got shape {images.shape}."
            )
        items = list(images)
    elif isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
        items = list(images)
    elif _is_path(images):
        folder = Path(images)
        if not folder.is_dir():
            raise InvalidInputError(f"{str(folder)!r} is not a directory of images.")
        items = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        raise InvalidInputError(
            "images must be an array (N, C, H, W), a list of paths or arrays, a mapping id -> image, "
            f"a directory or a ray.data.Dataset, not {type(images).__name__}."
        )
    if not items:
        raise InvalidInputError("no images were given.")
    if ids is None:
        if all(_is_path(it) for it in items):
            ids = [Path(it).stem for it in items]
            if len(set(ids)) != len(ids):
                raise InvalidInputError("several image files share a name stem; pass ids= to name them.")
        else:
            width = max(6, len(str(len(items) - 1)))
            ids = [f"{i:0{width}d}" for i in range(len(items))]
    ids = [check_id(i) for i in ids]
    if len(ids) != len(items):
        raise InvalidInputError(f"{len(ids)} ids were given for {len(items)} images.")
    if len(set(ids)) != len(ids):
        raise InvalidInputError("image ids must be unique.")
    per_image = _targets(targets, ids)
    rows = []
    for image_id, item, target in zip(ids, items, per_image, strict=True):
        row: dict[str, Any] = {"id": image_id, "target": target}
        if _is_path(item):
            row["path"] = os.fspath(item)
        else:
            row["image"] = check_float_array(f"image {image_id!r}", item)
            if not np.isfinite(row["image"]).all():
                raise InvalidInputError(f"image {image_id!r} holds NaN or infinite values.")
        rows.append(row)
    return rows


def _targets(targets: Any, ids: list[str]) -> list[int]:
    """One target per id, ``-1`` for None (the model's top class); indices checked by ``check_targets``."""
    if targets is None:
        return [-1] * len(ids)
    if isinstance(targets, Mapping):
        values = [targets.get(i) for i in ids]
    elif np.ndim(targets) == 0:
        values = [targets] * len(ids)
    else:
        values = list(targets)
        if len(values) != len(ids):
            raise InvalidInputError(f"{len(values)} targets were given for {len(ids)} images.")
    given = [k for k, v in enumerate(values) if v is not None]
    try:
        checked = check_targets([values[k] for k in given], len(given)) if given else []
    except InvalidInputError as exc:
        raise InvalidInputError(f"targets must be non-negative class indices or None; {exc}") from None
    out = [-1] * len(ids)
    for k, t in zip(given, checked, strict=True):
        out[k] = int(t)
    return out


def run_config(model: ModelSpec, method: MethodSpec, seed: int) -> dict[str, Any]:
    """What a run directory records in ``run.json``: results of another configuration are not resumed."""
    return {"model": model.identity(), "method": method.identity(), "seed": int(seed)}


def _check_local(worker: Any, rows: list[dict[str, Any]]) -> None:
    """In-process runs build the model before anything is written: refuse images of the wrong
    shape, missing files, targets beyond the class count and a per-image budget too small."""
    model = worker.model
    shape = tuple(model.input_shape)
    for row in rows:
        image = row.get("image")
        if image is not None and image.shape != shape:
            raise InvalidInputError(f"image {row['id']!r} has shape {image.shape}; the model takes {shape}.")
        if "path" in row and not Path(row["path"]).is_file():
            raise InvalidInputError(f"image file {row['path']!r} (id {row['id']!r}) does not exist.")
        if row["target"] >= model.num_classes:
            raise InvalidInputError(
                f"target {row['target']} of image {row['id']!r} is out of range for a model with {model.num_classes} classes."
            )
    needed = worker.method_spec.build(0).queries_per_explicand(shape)
    budget = getattr(model, "max_queries", None)
    if budget is not None and needed > budget:
        raise QueryBudgetExceeded(f"each image needs {needed} queries but the model's budget is {budget} per image.")


def explain_dataset(
    images: Images,
    model_spec: ModelSpec | str | os.PathLike[str],
    method_spec: MethodSpec | str,
    *,
    out: str | os.PathLike[str],
    num_workers: int = 1,
    gpus_per_worker: float = 0,
    cpus_per_worker: float = 1,
    seed: int = 0,
    resume: bool = True,
    ids: Sequence[Any] | None = None,
    targets: Any = None,
    progress: bool = False,
) -> DatasetResult:
    """Explain every image with one method and write per-image results to ``out``.

    Args:
        images: an array (N, C, H, W) in the model's explicand space, a list of image files
            (PNG/JPEG/.npy, loaded in the worker by :func:`onnxplain.images.load_image`) or
            arrays, a mapping id → file/array, a directory of image files, or a
            ``ray.data.Dataset`` with an ``id`` column and an ``image`` or ``path`` column.
        model_spec: :class:`~onnxplain.distributed.specs.OnnxModelSpec`,
            :class:`~onnxplain.distributed.specs.RemoteModelSpec`, an ``.onnx`` path or a v2 URL.
        method_spec: :class:`~onnxplain.distributed.specs.MethodSpec` or a black-box method name.
        out: run directory (created). See :mod:`onnxplain.distributed.store`.
        num_workers: Ray actors (one model each); ``0`` runs in this process without Ray.
        gpus_per_worker / cpus_per_worker: Ray resources of each actor; ONNX Runtime's intra-op
            threads are capped to ``cpus_per_worker`` unless the spec sets them.
        seed: run seed; image ``id`` is explained with ``image_seed(seed, id)``.
        resume: skip images already finished in ``out`` (which must hold the same configuration).
        ids: image ids (default: file stems for files, zero-padded indices for arrays).
        targets: None (top class), one int, a sequence aligned with the images, or id → int.
        progress: show Ray Data's progress bars.

    A failing image (unreadable file, wrong shape, model error) gets an error row; the others go
    on. Returns a :class:`DatasetResult`.
    """
    num_workers = check_positive_int("num_workers", num_workers, 0)
    check_nonnegative_float("gpus_per_worker", gpus_per_worker)
    check_positive_float("cpus_per_worker", cpus_per_worker)
    seed = check_seed(seed)
    resume = check_bool("resume", resume)
    if not isinstance(out, (str, os.PathLike)) or (Path(out).exists() and not Path(out).is_dir()):
        raise InvalidInputError(f"out must be a directory path (existing or not), got {out!r}.")
    model = as_model_spec(model_spec)
    method = as_method_spec(method_spec)
    check = getattr(model, "check", None)
    if callable(check):
        check()
    store = ResultStore(out)
    run_id = uuid.uuid4().hex[:12]
    threads = max(1, int(cpus_per_worker))
    t0 = time.perf_counter()
    ray_input = _is_ray_dataset(images)
    if ray_input and num_workers == 0:
        raise InvalidInputError("a ray.data.Dataset needs num_workers ≥ 1.")
    rows = [] if ray_input else _normalise_rows(images, ids, targets)
    worker = None
    if not ray_input and num_workers == 0:
        from onnxplain.distributed.worker import ExplainWorker

        device = "cuda" if gpus_per_worker > 0 else "cpu"
        worker = ExplainWorker(model, method, seed=seed, out=str(store.root), run_id=run_id, device=device, threads=None)
        _check_local(worker, rows)
    # nothing is written before this line: every argument above was checked
    store.prepare(run_config(model, method, seed), resume=resume)

    def on_ray(items: Any) -> tuple[list[str], int, int]:
        from onnxplain.distributed.ray_runner import run_on_ray

        return run_on_ray(
            items,
            model,
            method,
            store=store,
            seed=int(seed),
            run_id=run_id,
            num_workers=int(num_workers),
            gpus_per_worker=gpus_per_worker,
            cpus_per_worker=cpus_per_worker,
            threads=threads,
            resume=resume,
            progress=progress,
        )

    if ray_input:
        all_ids, n_computed, n_skipped = on_ray(images)

    else:
        all_ids = [r["id"] for r in rows]
        done = store.finished(all_ids) if resume else set()
        todo = [r for r in rows if r["id"] not in done]
        n_skipped, n_computed = len(rows) - len(todo), len(todo)
        if todo and worker is not None:
            for row in todo:
                worker.explain_one(
                    row["id"], row.get("image"), row.get("path"), None if row["target"] < 0 else row["target"]
                )
        elif todo:
            _, n_computed, late = on_ray(todo)
            n_skipped += late  # finished by someone else between our listing and the worker
    gathered = store.gather(all_ids)
    return DatasetResult(
        out=store.root,
        rows=gathered,
        n_computed=n_computed,
        n_skipped=n_skipped,
        seconds=time.perf_counter() - t0,
        backend="ray" if num_workers else "local",
        num_workers=int(num_workers),
        extra={"run": run_id},
    )


def _is_ray_dataset(images: Any) -> bool:
    cls = type(images)
    return cls.__module__.startswith("ray.data") and hasattr(images, "map_batches")
