"""The run: which photos, which items are still missing, one photo at a time, optionally in workers.

For every (model, photo) the photo is loaded and prepared once (target, blurred images), every
missing map is explained and stored at once, then the metrics of every map of that photo that
lacks them are computed in batches and stored. Nothing stored is recomputed: a re-run only does
what is missing, an interrupted run resumes at the explanation it was in.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import real_assets as ra
from benchmarks.fidelity import metrics as fm
from benchmarks.fidelity.methods import REFERENCE, Spec, random_map
from benchmarks.fidelity.progress import Progress
from benchmarks.fidelity.store import Item, WorkDir, digest

METRICS = "__metrics__"  # the progress pseudo-method of a photo's metric computation

# The 15 labelled photos of the cache (ImageNet classes known), in a fixed order; --photos N takes
# the first N of them, then the cache's other photos in manifest order.
PREFERRED_PHOTOS = (
    "skimage_chelsea",
    "skimage_coffee",
    "skimage_rocket",
    "skimage_motorcycle",
    "skimage_camera",
    "sklearn_china",
    "mpl_grace_hopper",
    "imgaug_quokka",
    "kivy_cat_mug",
    "ultralytics_bus",
    "ultralytics_zidane",
    "gradio_cheetah",
    "gradio_cheetah_face",
    "gradio_cheetah_cub",
    "gradio_lion",
)


def choose_photos(cache: str | os.PathLike[str], n: int) -> list[str]:
    """The first ``n`` of: :data:`PREFERRED_PHOTOS`, other labelled photos, unlabelled photos (manifest order)."""
    entries = ra.load_manifest(cache)["photos"]
    names = [p["name"] for p in entries]
    order = [p for p in PREFERRED_PHOTOS if p in names]
    order += [p["name"] for p in entries if p["labels"] and p["name"] not in order]
    order += [p["name"] for p in entries if p["name"] not in order]
    return order[:n]


@dataclass(frozen=True)
class Plan:
    """What a run covers."""

    cache: Path
    models: tuple[str, ...]
    photos: tuple[str, ...]
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    specs: tuple[Spec, ...]
    work: Path

    def items(self, model: str, photo: str) -> list[tuple[Item, Spec]]:
        return [
            (Item(model, photo, spec.key, budget, seed), spec)
            for spec in self.specs
            for budget in spec.budgets(self.budgets)
            for seed in spec.seeds(self.seeds)
        ]

    def reference(self, model: str, photo: str) -> Item:
        return Item(model, photo, REFERENCE, None, None)

    def pending(self) -> list[Item]:
        """Items without a stored map of the current configuration, and one metrics pseudo-item
        per photo that has any (for the ETA; the subject is checked again when the photo runs)."""
        work = WorkDir(self.work)
        out: list[Item] = []
        for model in self.models:
            for photo in self.photos:
                todo = [
                    i for i, s in self.items(model, photo) if not work.has_map(i, s.config(i.budget, i.seed))
                ]
                out += todo + ([Item(model, photo, METRICS, None, None)] if todo else [])
        return out


class Subject:
    """One model in this process: the ONNX model (one session for the whole run) and its torch twin."""

    def __init__(self, cache: Path, name: str, threads: int | None = None) -> None:
        from onnxplain import OnnxModel

        entry = ra.model_entry(cache, name)
        path = cache / entry["onnx"]
        self.cache, self.name = cache, name
        self.size = int(entry["input_shape"][-1])
        self.query = OnnxModel(
            path, output="probs", device="cpu", intra_op_threads=threads, **ra.onnx_kwargs(entry)
        )
        self.digest = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
        self._net: Any = None

    def net(self) -> Any:
        if self._net is None:
            self._net = ra.torch_module(self.cache, self.name)
            if self._net is None:
                raise RuntimeError(
                    f"model {self.name!r} has no torch twin in the cache: no white-box methods."
                )
        return self._net


def explain(spec: Spec, item: Item, subject: Subject, photo: fm.Photo) -> tuple[np.ndarray, dict[str, Any]]:
    """One map (H, W) and what it cost."""
    if spec.kind == "random":
        assert item.seed is not None
        return random_map(*photo.shape, item.seed, item.photo), {
            "seconds": 0.0,
            "n_queries": 0,
            "n_backward": 0,
        }
    method = spec.build(item.budget, item.seed)
    model = subject.query if spec.kind == "blackbox" else subject.net()
    t0 = time.perf_counter()
    exp = method.explain(model, photo.x, target=photo.target)
    seconds = time.perf_counter() - t0
    info = {
        "seconds": seconds,
        "model_seconds": exp.model_seconds,
        "n_queries": int(exp.n_queries),
        "n_backward": int(exp.n_backward),
        "target": int(exp.target),
        "score": float(exp.score),
        "params": exp.params,
    }
    return np.asarray(exp.saliency("mean"), dtype=np.float32), info


Report = Callable[[Item, float, int, str], None]


@dataclass
class PhotoRun:
    """What one (model, photo) run did."""

    model: str
    photo: str
    explained: list[tuple[Item, float, int]] = field(default_factory=list)
    failed: list[tuple[Item, str]] = field(default_factory=list)
    metric_maps: int = 0
    metric_seconds: float = 0.0


def run_photo(plan: Plan, subject: Subject, name: str, x: np.ndarray, report: Report) -> PhotoRun:
    """Explain every missing map of one photo, then compute every missing metric (batched)."""
    work, out = WorkDir(plan.work), PhotoRun(subject.name, name)
    photo = fm.prepare_photo(subject.query, x)
    who = {"model": subject.digest, "photo": digest(photo.x), "target": photo.target}
    items = plan.items(subject.name, name)
    for item, spec in items:
        config = spec.config(item.budget, item.seed)
        if work.has_map(item, config, who):
            continue
        try:
            saliency, info = explain(spec, item, subject, photo)
        except Exception as exc:  # one failing method must not end an hours-long run
            out.failed.append((item, f"{type(exc).__name__}: {exc}"))
            report(item, 0.0, 0, f"FAILED: {type(exc).__name__}: {exc}")
            continue
        work.save_map(item, saliency, config, who, info)
        out.explained.append((item, info["seconds"], info["n_queries"]))
        report(item, info["seconds"], info["n_queries"], "")
    t0 = time.perf_counter()
    out.metric_maps = _metrics(plan, work, subject, photo, who, items)
    out.metric_seconds = time.perf_counter() - t0
    if out.metric_maps:
        report(
            Item(subject.name, name, METRICS, None, None), out.metric_seconds, 0, f"{out.metric_maps} maps"
        )
    return out


def _metrics(
    plan: Plan,
    work: WorkDir,
    subject: Subject,
    photo: fm.Photo,
    who: dict[str, Any],
    items: list[tuple[Item, Spec]],
) -> int:
    """Curve metrics (batched, :data:`~benchmarks.fidelity.metrics.METRIC_CHUNK` maps a call) and
    agreement with the reference for every stored map lacking them; the number of maps scored."""
    protocol = fm.protocol(*photo.shape)
    present = [i for i, s in items if work.has_map(i, s.config(i.budget, i.seed), who)]
    ref_item = plan.reference(subject.name, items[0][0].photo)
    reference = work.load_map(ref_item) if ref_item in present else None
    ref_digest = None if reference is None else digest(reference)
    curves, agree = [], []
    for item in present:
        stale_curves, stale_agreement = work.stale(item, protocol, ref_digest)
        curves += [item] if stale_curves else []
        agree += [item] if stale_agreement else []
    for chunk in _chunks(curves, fm.METRIC_CHUNK):
        maps = np.stack([work.load_map(i) for i in chunk])
        for item, values in zip(chunk, fm.curve_metrics(subject.query, photo, maps), strict=True):
            work.save_metrics(item, {"protocol": protocol, "curves": values})
    for item in agree:
        assert reference is not None and ref_digest is not None
        values = fm.agreement_scales(work.load_map(item), reference)
        work.save_metrics(item, {"reference": ref_digest, "agreement": values})
    return len(curves)


def _chunks(seq: list[Item], n: int) -> Iterator[list[Item]]:
    for lo in range(0, len(seq), n):
        yield seq[lo : lo + n]


def printer(stream: Any = None) -> Report:
    """A report callback that prints one line per item (workers; the parent adds the ETA)."""

    def report(item: Item, seconds: float, queries: int, note: str) -> None:
        what = f"{item.method}@{item.budget}" if item.budget is not None else item.method
        text = note or f"{seconds:.1f} s, {queries} queries"
        print(
            f"[pid {os.getpid()}] {item.model} {item.photo} {what}: {text}",
            file=stream or sys.stderr,
            flush=True,
        )

    return report


# -- the whole run ---------------------------------------------------------------------------------


def run(plan: Plan, jobs: int = 1, stream: Any = None) -> list[PhotoRun]:
    """Every (model, photo) of the plan, in this process (``jobs=1``) or in ``jobs`` workers."""
    progress = Progress(plan.pending(), jobs=jobs, stream=stream)
    progress.start()
    tasks = [(m, p) for m in plan.models for p in plan.photos]
    if jobs <= 1:
        subjects: dict[str, Subject] = {}
        results = []
        for model, photo in tasks:
            if model not in subjects:
                subjects.clear()  # one model's session at a time
                subjects[model] = Subject(plan.cache, model)
            subject = subjects[model]
            x = ra.photos(plan.cache, subject.size, names=[photo])[0][0]
            results.append(run_photo(plan, subject, photo, x, progress.done))
        return results
    return _run_parallel(plan, tasks, jobs, progress)


_WORKER: dict[str, Any] = {}


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["threads"] = threads


def _task(plan: Plan, model: str, photo: str) -> PhotoRun:
    subjects: dict[str, Subject] = _WORKER.setdefault("subjects", {})
    if model not in subjects:
        subjects.clear()
        subjects[model] = Subject(plan.cache, model, _WORKER.get("threads"))
    subject = subjects[model]
    x = ra.photos(plan.cache, subject.size, names=[photo])[0][0]
    return run_photo(plan, subject, photo, x, printer())


def _run_parallel(plan: Plan, tasks: list[tuple[str, str]], jobs: int, progress: Progress) -> list[PhotoRun]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cpus // jobs)
    results = []
    context = mp.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = [pool.submit(_task, plan, m, p) for m, p in tasks]
        for future in as_completed(futures):
            res = future.result()
            for item, seconds, queries in res.explained:
                progress.done(item, seconds, queries, "", echo=False)
            for item, _ in res.failed:
                progress.done(item, 0.0, 0, "FAILED", echo=False)
            if res.metric_maps:
                progress.done(
                    Item(res.model, res.photo, METRICS, None, None), res.metric_seconds, 0, "", echo=False
                )
            progress.line()
            results.append(res)
    return results
