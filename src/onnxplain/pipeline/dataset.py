"""Computing a run's maps on the dataset runner (:func:`onnxplain.distributed.explain_dataset`).

Each image is explained in a worker with the seed ``image_seed(seed, id)`` (so results do not
depend on scheduling), into the runner's own store ``runs/<method>/``. That store is resumed when
it holds the same configuration and overwritten otherwise: the caller's result cache has already
decided which maps need computing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError
from onnxplain.explanation import Explanation
from onnxplain.pipeline.maps import MethodRun


@dataclass
class DatasetExecutor:
    """An :class:`~onnxplain.pipeline.maps.Executor` running ``explain_dataset`` once per method.

    ``model_spec``: an ``OnnxModelSpec`` or ``RemoteModelSpec``; ``paths``/``ids``: every
    explicand's file and id; ``method_params``: constructor arguments per method, without the
    seed; ``workers``: Ray actors (0: the runner in this process); ``bars``: Ray Data's progress bars.
    """

    model_spec: Any
    paths: list[str]
    ids: list[str]
    runs_dir: Path
    method_params: Mapping[str, Mapping[str, Any]]
    seed: int = 0
    workers: int = 1
    force: bool = False
    bars: bool = False
    results: dict[str, Any] = field(default_factory=dict)

    def prepare(self, runs: list[MethodRun], todo: dict[str, list[int]], targets: np.ndarray) -> None:
        from onnxplain.distributed import MethodSpec, ResultStore, explain_dataset
        from onnxplain.distributed.runner import run_config

        for run in runs:
            picked = todo.get(run.name, [])
            if not picked:
                continue
            spec = MethodSpec(run.name, dict(self.method_params.get(run.name, {})))
            store = self.runs_dir / run.name
            result = explain_dataset(
                [self.paths[i] for i in picked], self.model_spec, spec, out=store,
                num_workers=self.workers, seed=self.seed, ids=[self.ids[i] for i in picked],
                targets=[int(targets[i]) for i in picked], progress=self.bars,
                resume=not self.force and ResultStore(store).holds(run_config(self.model_spec, spec, self.seed)),
            )
            if result.errors:
                first = result.errors[0]
                raise InvalidInputError(f"{run.name} failed on image {first['id']!r}: {first.get('error')}")
            self.results[run.name] = result

    def explain(self, run: MethodRun, i: int, x: np.ndarray, target: int) -> Explanation:
        return self.results[run.name].load(self.ids[i])
