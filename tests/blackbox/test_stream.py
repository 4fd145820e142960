"""The query stream: whether the next call's queries are built on a helper thread, and that the
maps never depend on it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from onnxplain.blackbox import GE, GEEX, LIME, RISE, base, streaming
from onnxplain.blackbox.streaming import prefetch_pays
from onnxplain.models.base import FunctionModel
from tests.blackbox.conftest import scalar_model

EXPLAINERS = {
    "geex": lambda: GEEX(n_queries=700, seed=3),
    "ge": lambda: GE(n_queries=700, seed=3),
    "rise": lambda: RISE(n_masks=700, seed=3),
    "lime": lambda: LIME(n_samples=700, seed=3),
}


class TanhModel(FunctionModel):
    """A 2-class model on 1×12×12 inputs: tanh of a fixed projection, and its negation."""

    def __init__(self) -> None:
        w = np.random.default_rng(0).normal(size=144)
        super().__init__(lambda z: self._scores(z, w), (1, 12, 12), 2, output="raw", batch_size=64)

    @staticmethod
    def _scores(z: np.ndarray, w: np.ndarray) -> np.ndarray:
        v = np.tanh(np.asarray(z, np.float64).reshape(len(z), -1) @ w / 12)
        return np.stack([v, -v], axis=1)


@pytest.fixture
def prefetch(monkeypatch: pytest.MonkeyPatch):
    def set_to(value: bool | None) -> None:
        monkeypatch.setattr(streaming, "PREFETCH", value)

    return set_to


def test_the_rule_prefetches_for_remote_models_and_expensive_builds_only(prefetch) -> None:
    local = scalar_model(lambda r: r.sum(1), (1, 4, 4))
    remote = scalar_model(lambda r: r.sum(1), (1, 4, 4))
    remote.uses_host_cpu = False
    prefetch(None)
    assert prefetch_pays(remote, build_seconds=1e-6, call_seconds=1.0)
    assert not prefetch_pays(local, build_seconds=0.2 * 3.5e-3, call_seconds=3.5e-3)  # LIME, demo CNN
    assert not prefetch_pays(local, build_seconds=0.05, call_seconds=1.0)  # GEEX, ResNet-18
    assert prefetch_pays(local, build_seconds=5e-3, call_seconds=1e-3)  # GEEX, small 224×224 CNN
    prefetch(True)
    assert prefetch_pays(local, build_seconds=0.0, call_seconds=1.0)
    prefetch(False)
    assert not prefetch_pays(remote, build_seconds=1.0, call_seconds=0.0)


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_maps_are_identical_with_and_without_the_helper_thread(name: str, prefetch, monkeypatch) -> None:
    x = np.random.default_rng(1).random((2, 1, 12, 12)).astype(np.float32)
    builders: list[str] = []
    write = streaming.stream

    def spy_stream(ops, model, perturbations, x, targets, queries_per_call) -> None:
        original = perturbations.write

        def recording(block, out) -> None:
            builders.append(threading.current_thread().name)
            original(block, out)

        perturbations.write = recording
        write(ops, model, perturbations, x, targets, queries_per_call)

    monkeypatch.setattr(base, "stream", spy_stream)
    maps = {}
    for forced in (False, True):
        prefetch(forced)
        builders.clear()
        maps[forced] = EXPLAINERS[name]().explain(TanhModel(), x, target=[0, 1]).attributions
        helpers = [t for t in builders if t.startswith("onnxplain-queries")]
        assert len(builders) > 2  # several calls, so the choice matters
        assert bool(helpers) == forced
        if forced:  # the first call is built in turn (and timed), the rest on the helper
            assert builders[0] == threading.main_thread().name and len(helpers) == len(builders) - 1
    np.testing.assert_array_equal(maps[False], maps[True])


@pytest.mark.parametrize("forced", [False, True], ids=["in-turn", "prefetch"])
def test_at_most_two_calls_worth_of_queries_are_held(forced: bool, prefetch, monkeypatch) -> None:
    """Memory does not grow with the budget: the calls' queries are written into two reused buffers."""
    made: list[streaming._Calls] = []
    original = streaming._Calls.__init__

    def spy(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(streaming._Calls, "__init__", spy)
    prefetch(forced)
    x = np.random.default_rng(2).random((1, 1, 12, 12)).astype(np.float32)
    GEEX(n_queries=640, seed=1, queries_per_call=64).explain(TanhModel(), x, target=0)  # 10 calls of 64
    assert len(made) == 1 and len(made[0].groups) == 10
    assert len(made[0].buffers) == 2
