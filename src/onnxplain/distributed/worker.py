"""One worker's job: build the model once, then explain images one by one into the store.

The same class runs in-process (``num_workers=0``) and inside each Ray actor, so both paths make
bit-identical explanations: the explainer for an image is built fresh with
``image_seed(seed, id)`` and the model's counters are reset before it (``max_queries`` is a
budget per image).
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from typing import Any

import numpy as np

from onnxplain.distributed.specs import MethodSpec, ModelSpec, image_seed
from onnxplain.distributed.store import ResultStore
from onnxplain.errors import OnnxplainError
from onnxplain.explanation import Explanation

__all__ = ["ExplainWorker"]


def _scalar(value: Any) -> Any:
    if value is None:
        return None
    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 else arr.tolist()


class ExplainWorker:
    """Holds one model (one ONNX Runtime session or one HTTP client) and explains rows with it."""

    def __init__(
        self,
        model_spec: ModelSpec,
        method_spec: MethodSpec,
        *,
        seed: int,
        out: str,
        run_id: str,
        device: str = "cpu",
        threads: int | None = None,
        defer_errors: bool = False,
        skip_finished: bool = False,
    ) -> None:
        self.skip_finished = skip_finished
        # In a Ray actor an exception reaches the driver only as text (ActorDiedError or
        # UserCodeException), so the Ray runner defers it and the batch reports it as a row.
        self.build_error: OnnxplainError | None = None
        try:
            self.model = model_spec.build(device, threads=threads)
        except OnnxplainError as exc:
            if not defer_errors:
                raise
            self.build_error = exc
        self.method_spec = method_spec
        self.seed = int(seed)
        self.store = ResultStore(out)
        self.run_id = run_id
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def load(self, image: Any, path: Any) -> np.ndarray:
        if path is not None and str(path) != "":
            from onnxplain.images import load_image

            return load_image(str(path), self.model.input_shape)
        return np.asarray(image, dtype=np.float32)

    def explain_one(
        self, image_id: str, image: Any = None, path: Any = None, target: int | None = None
    ) -> dict[str, Any]:
        """Explain one image and commit its npz + row; an exception becomes an error row instead."""
        image_seed_value = image_seed(self.seed, image_id)
        row: dict[str, Any] = {
            "id": image_id,
            "method": self.method_spec.name,
            "seed": image_seed_value,
            "run_seed": self.seed,
            "run": self.run_id,
            "worker": self.worker,
        }
        if path is not None and str(path) != "":
            row["path"] = str(path)
        t0 = time.perf_counter()
        try:
            x = self.load(image, path)
            explainer = self.method_spec.build(image_seed_value)
            reset = getattr(self.model, "reset_counters", None)
            if callable(reset):
                reset()
            explanation: Explanation = explainer.explain(self.model, x, target=target)
            map_path = explanation.save(self.store.map_path(image_id))
        except Exception as exc:  # one bad image must not stop the others: record it
            row.update(
                status="error",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(limit=4),
                seconds=time.perf_counter() - t0,
            )
        else:
            row.update(
                status="ok",
                file=str(map_path.relative_to(self.store.root)),
                target=_scalar(explanation.target),
                score=_scalar(explanation.score),
                baseline_score=_scalar(explanation.baseline_score),
                completeness_gap=_scalar(explanation.completeness_gap),
                n_queries=int(explanation.n_queries),
                seconds=float(explanation.seconds),
                model_seconds=float(explanation.model_seconds),
            )
        row["finished_at"] = time.time()  # wall clock, for throughput over a whole run
        self.store.write_row(row)
        return row

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data ``map_batches`` entry point: columns ``id`` and ``image`` or ``path`` (+ ``target``)."""
        ids = [str(i) for i in batch["id"]]
        if self.build_error is not None:
            n = len(ids)
            return {
                "id": np.asarray(ids, dtype=object),
                "status": np.asarray(["fatal"] * n, dtype=object),
                "error": np.asarray(
                    [f"{type(self.build_error).__name__}: {self.build_error}"] * n, dtype=object
                ),
            }
        images = batch.get("image")
        paths = batch.get("path")
        targets = batch.get("target")
        statuses, errors = [], []
        for k, image_id in enumerate(ids):
            if self.skip_finished and self.store.is_finished(image_id):
                statuses.append("skipped")
                errors.append("")
                continue
            target = None if targets is None or int(targets[k]) < 0 else int(targets[k])
            row = self.explain_one(
                image_id,
                None if images is None else images[k],
                None if paths is None else paths[k],
                target,
            )
            statuses.append(row["status"])
            errors.append(row.get("error", ""))
        return {
            "id": np.asarray(ids, dtype=object),
            "status": np.asarray(statuses, dtype=object),
            "error": np.asarray(errors, dtype=object),
        }
