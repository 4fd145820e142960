"""batch_size="auto": the probe's budget and choice (on a simulated clock) and its on-disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onnxplain.models import OnnxModel, autobatch
from tests.models.builders import linear_model

SHAPE = (2, 3, 4)
W = np.random.default_rng(7).normal(size=(24, 5)).astype(np.float32)


class SimulatedModel:
    """A model whose call of b samples takes ``overhead + b·per_sample`` simulated seconds
    (× ``slowdown`` per doubling beyond ``peak``; the first call of the session × 3)."""

    def __init__(self, per_sample: float, overhead: float, peak: int | None = None, slowdown: float = 0.1) -> None:
        self.per_sample, self.overhead, self.peak, self.slowdown = per_sample, overhead, peak, slowdown
        self.now = 0.0
        self.first = True

    def call_time(self, b: int) -> float:
        t = self.overhead + b * self.per_sample
        if self.peak is not None and b > self.peak:
            t *= 1 + self.slowdown * np.log2(b / self.peak)
        return t

    def forward(self, chunk: np.ndarray) -> None:
        self.now += self.call_time(len(chunk)) * (3 if self.first else 1)
        self.first = False

    def probe(self, sample_bytes: int = 3 * 224 * 224 * 4) -> autobatch.Probe:
        return autobatch.probe(self.forward, lambda b: np.zeros((b, 1), np.float32), sample_bytes, clock=lambda: self.now)

    def best_size(self) -> int:
        return min(autobatch.CANDIDATES, key=lambda b: self.call_time(b) / b)

    def per_sample_at(self, b: int) -> float:
        return self.call_time(b) / b


@pytest.mark.parametrize(
    "per_sample,overhead,peak",
    [
        (25e-3, 1e-3, 8),  # ResNet-18-class on 2 CPU cores
        (10e-3, 1e-3, 16),  # EfficientNet-class (the 2.4 s of ~10 s)
        (80e-3, 2e-3, None),  # a ResNet-50-class model
    ],
)
def test_first_probe_costs_at_most_a_tenth_of_a_1000_query_explanation(per_sample, overhead, peak) -> None:
    sim = SimulatedModel(per_sample, overhead, peak)
    p = sim.probe()
    explanation = 1000 * sim.per_sample_at(sim.best_size())  # at the model's best speed, a lower bound
    assert p.spent() <= 0.10 * explanation
    # and the pick is within 5 % of the best throughput (the tolerance of pick_batch_size)
    best = autobatch.pick_batch_size(p.rates)
    assert sim.per_sample_at(best) <= 1.05 * sim.per_sample_at(sim.best_size())


@pytest.mark.parametrize("per_sample,overhead", [(5e-6, 50e-6), (1e-4, 2e-3)])
def test_overhead_bound_models_get_large_chunks_within_the_minimum_budget(per_sample, overhead) -> None:
    """A tiny CPU model (demo-like) and a GPU-like curve: the knee of the cost model sends the
    probe straight to hundreds of samples instead of walking up from 1."""
    sim = SimulatedModel(per_sample, overhead)
    p = sim.probe(sample_bytes=28 * 28 * 4)
    best = autobatch.pick_batch_size(p.rates)
    assert best >= 256 and sim.per_sample_at(best) <= 1.05 * sim.per_sample_at(sim.best_size())
    assert p.spent() <= 1.25 * autobatch.MIN_PROBE_SECONDS  # one call may overrun the budget
    assert len(p.rates) <= 5  # sizes 1, 8 and the knee's neighbourhood, not all eleven


def test_knee_of_the_cost_model() -> None:
    """T(b) = a + b·c with a = 1 ms, c = 10 µs: overhead ≤ 5 % from b ≥ 0.95·a/(0.05·c) = 1900."""
    p = autobatch.Probe(lambda c: None, lambda b: None, 4)
    p.rates = {1: 1 / 1.01e-3, 8: 8 / 1.08e-3}
    assert autobatch.knee(p) == 1024  # the knee (1900) lies beyond the largest candidate
    p.rates = {1: 1 / 0.011, 8: 8 / 0.081}  # a = 1 ms, c = 10 ms: the knee is at b ≥ 1.9
    assert autobatch.knee(p) == 2
    p.rates = {1: 1.0, 8: 1.0}  # T(b) = b: no overhead at all
    assert autobatch.knee(p) == 1
    p.rates = {1: 1.0, 8: 8.0}  # T(b) = 1: nothing but overhead (bigger is better)
    assert autobatch.knee(p) == 1024


def test_huge_chunks_are_never_probed() -> None:
    """A chunk over 256 MiB is never built, however fast the model."""
    sim = SimulatedModel(1e-6, 1e-3)
    p = sim.probe(sample_bytes=64 * 2**20)  # 4 samples fill the cap
    assert max(p.rates) <= 4


# -- the cache -----------------------------------------------------------------------------------


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache directory, an empty memory cache, and a short probe (the budget is what the
    simulated tests check; here only the bookkeeping matters)."""
    monkeypatch.setenv("ONNXPLAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(autobatch, "_MEMORY", {})
    monkeypatch.setattr(autobatch, "MIN_PROBE_SECONDS", 0.02)
    monkeypatch.setattr(autobatch, "MAX_PROBE_SECONDS", 0.05)
    return tmp_path / "cache" / autobatch.CACHE_FILE


def spied(model: OnnxModel) -> list[int]:
    """Count the model's forwards (the probe's only way to the session)."""
    calls: list[int] = []
    forward = model._forward

    def counting(chunk):
        calls.append(len(chunk))
        return forward(chunk)

    model._forward = counting  # type: ignore[method-assign]
    return calls


def test_second_model_reads_the_cache_instead_of_probing(cache: Path) -> None:
    first = OnnxModel(linear_model(W, SHAPE))
    probed = spied(first)
    size = first.best_batch_size()
    assert probed and "measured" in first.describe()["batch_size_source"]
    entries = json.loads(cache.read_text())["entries"]
    assert [e["batch_size"] for e in entries.values()] == [size]
    autobatch.clear_memory()  # as a new process
    second = OnnxModel(linear_model(W, SHAPE))
    calls = spied(second)
    assert second.best_batch_size() == size and calls == []
    assert second.describe()["batch_size_source"] == "auto: read from the cache"
    assert second.n_queries == 0


def test_another_digest_or_thread_count_probes_again(cache: Path) -> None:
    OnnxModel(linear_model(W, SHAPE)).best_batch_size()
    autobatch.clear_memory()
    other_weights = OnnxModel(linear_model(W + 1, SHAPE))
    threads = OnnxModel(linear_model(W, SHAPE), intra_op_threads=1)
    nhwc = OnnxModel(linear_model(W, SHAPE, layout="NHWC"), layout="NHWC")
    for model in (other_weights, threads, nhwc):
        calls = spied(model)
        model.best_batch_size()
        assert calls, model
    keys = [json.loads(k) for k in json.loads(cache.read_text())["entries"]]
    assert len(keys) == 4
    assert {k["threads"] for k in keys} == {0, 1} and {k["layout"] for k in keys} == {"NCHW", "NHWC"}
    assert len({k["model"] for k in keys}) == 3  # W, W + 1, and the NHWC graph
    machine = autobatch.machine_identity()
    assert all(k["cpu"] == machine["cpu"] and k["cores"] == machine["cores"] for k in keys)
    assert all(k["onnxruntime"] == machine["onnxruntime"] for k in keys)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe\x00garbage", b'{"version": 1, "entries": []}', b'{"version": 99, "entries": {}}', b"[]"],
)
def test_corrupt_cache_is_ignored_and_replaced(cache: Path, content: bytes) -> None:
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    model = OnnxModel(linear_model(W, SHAPE))
    calls = spied(model)
    size = model.best_batch_size()
    assert calls  # probed, no crash
    assert [e["batch_size"] for e in json.loads(cache.read_text())["entries"].values()] == [size]


def test_bad_entries_are_ignored(cache: Path) -> None:
    model = OnnxModel(linear_model(W, SHAPE))
    key = model.probe_key()
    cache.parent.mkdir(parents=True)
    for bad in (0, -4, "64", True, None):
        cache.write_text(json.dumps({"version": 1, "entries": {key: {"batch_size": bad}}}))
        assert autobatch.lookup(key) is None
    cache.write_text(json.dumps({"version": 1, "entries": {key: {"batch_size": 48}}}))
    assert autobatch.lookup(key) == 48
    calls = spied(model)
    assert model.best_batch_size() == 48 and calls == []


def test_unwritable_cache_costs_only_a_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("ONNXPLAIN_CACHE_DIR", str(blocker))
    model = OnnxModel(linear_model(W, SHAPE))
    assert model.best_batch_size() in autobatch.CANDIDATES  # no crash
    assert blocker.read_text().startswith("a file")


def test_cache_location_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONNXPLAIN_CACHE_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert autobatch.cache_path() == tmp_path / "own" / "batch_sizes.json"
    monkeypatch.delenv("ONNXPLAIN_CACHE_DIR")
    assert autobatch.cache_path() == tmp_path / "xdg" / "onnxplain" / "batch_sizes.json"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # the XDG spec: ignore relative paths
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert autobatch.cache_path() == tmp_path / "home" / ".cache" / "onnxplain" / "batch_sizes.json"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert autobatch.cache_path() == tmp_path / "home" / ".cache" / "onnxplain" / "batch_sizes.json"


def test_cache_keeps_the_newest_entries(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autobatch, "MAX_CACHE_ENTRIES", 3)
    for i in range(5):
        autobatch.store(f"key{i}", 2**i, 0.1)
    entries = json.loads(cache.read_text())["entries"]
    assert sorted(entries) == ["key2", "key3", "key4"]
