"""The benchmark harness measures what it claims: interleaving, ratios, isolated peak memory,
the plain-ORT speed limit, README blocks, and the "same noise" used against the GEEX reference."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import harness as h
from benchmarks.__main__ import benchmark_names, script_flags
from benchmarks.harness import reporting, timing
from tests.models.builders import linear_model


def test_interleave_alternates_order_and_excludes_warmup() -> None:
    calls: list[str] = []
    cases = {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}
    timings, results = h.interleave(cases, repeats=4, warmup=1, verbose=False)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert [len(t.seconds) for t in timings.values()] == [4, 4]
    assert results == {"a": 1, "b": 2}


def test_interleave_pauses_before_every_timed_call_and_not_in_the_timing(monkeypatch) -> None:
    events: list[object] = []
    monkeypatch.setattr(timing.time, "sleep", lambda s: events.append(s))
    cases = {"a": lambda: events.append("a"), "b": lambda: events.append("b")}
    timings, _ = h.interleave(cases, repeats=2, warmup=1, verbose=False, settle=0.25)
    assert events == ["a", "b", 0.25, "a", 0.25, "b", 0.25, "b", 0.25, "a"]
    events.clear()
    h.interleave(cases, repeats=1, warmup=0, verbose=False)
    assert events == [h.SETTLE_SECONDS, "a", h.SETTLE_SECONDS, "b"]
    monkeypatch.undo()
    timed, _ = h.interleave({"a": lambda: None}, repeats=1, warmup=0, verbose=False, settle=0.05)
    assert timed["a"].seconds[0] < 0.05


class FakeClock:
    """A clock that only moves when something sleeps: timing assertions without wall-clock noise."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_interleave_times_blocks_of_short_calls_with_a_count_fixed_in_the_first_round(monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(timing, "time", clock)
    calls = {"fast": 0, "slow": 0}

    def fast() -> None:
        calls["fast"] += 1
        clock.sleep(0.002)

    def slow() -> None:
        calls["slow"] += 1
        clock.sleep(0.03)

    timed, _ = h.interleave(
        {"fast": fast, "slow": slow}, repeats=3, warmup=0, verbose=False, settle=0, min_block=0.02
    )
    assert 5 <= calls["fast"] // 3 <= 10 and calls["fast"] % 3 == 0  # ~0.02 / 0.002 calls a round
    assert calls["slow"] == 3  # one call already fills the block
    assert all(t == pytest.approx(0.002) for t in timed["fast"].seconds)  # time per call, not per block
    assert all(t == pytest.approx(0.03) for t in timed["slow"].seconds)


def test_ratios_use_medians_and_pairs() -> None:
    ours = h.Timing("ours", [1.0, 2.0, 30.0])
    theirs = h.Timing("theirs", [4.0, 4.0, 40.0])
    assert ours.median == 2.0 and theirs.median == 4.0
    assert h.ratio(ours, theirs) == 0.5
    assert h.paired_ratio(ours, theirs) == pytest.approx(0.5)  # median of 0.25, 0.5, 0.75


def test_pearson_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 7, 7)), rng.normal(size=(3, 7, 7))
    assert h.pearson(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert h.pearson(a, -2 * a + 1) == pytest.approx(-1.0)


def test_write_section_replaces_only_its_block(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(h.NO_README_ENV, raising=False)
    readme = tmp_path / "README.md"
    other = f"{h.begin_marker('other')}\nkeep me\n{h.end_marker('other')}"
    readme.write_text(f"# T\n\n{h.begin_marker('mine')}\nold\n{h.end_marker('mine')}\n\n{other}\n")
    assert h.write_section("mine", "new numbers", readme)
    text = readme.read_text()
    assert "new numbers" in text and "old" not in text and other in text
    assert not h.write_section("mine", "new numbers", readme)  # unchanged: no write
    assert h.write_section("fresh", "appended", readme)
    assert readme.read_text().rstrip().endswith(h.end_marker("fresh"))
    monkeypatch.setenv(h.NO_README_ENV, "1")
    assert not h.write_section("mine", "ignored", readme)
    assert "ignored" not in readme.read_text()


def test_publish_saves_and_writes_unless_told_not_to(monkeypatch, capsys) -> None:
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(reporting, "save_results", lambda name, data: calls.append(("save", name)))
    monkeypatch.setattr(reporting, "write_section", lambda name, md: calls.append(("write", md)))
    assert h.publish("x", {"a": 1}, "| table |") == 0
    assert calls == [("save", "x"), ("write", "| table |")]
    assert "| table |" in capsys.readouterr().out
    calls.clear()
    assert h.publish("x", {"skipped": "no path"}, "skipped", save=False) == 0
    assert calls == [] and "skipped" in capsys.readouterr().out


def test_run_isolated_sees_a_known_allocation() -> None:
    run = h.run_isolated("benchmarks.harness.memory:calibration_setup", {"mib": 200})
    assert run.peak_reset
    assert 190 * 2**20 <= run.added <= 260 * 2**20
    assert run.peak_process >= run.rss_before + run.added - 2**20
    assert run.result["sum"] == pytest.approx(200 * 2**20 / 8 / 4096, rel=1e-3)


def test_run_isolated_reports_a_failing_child() -> None:
    with pytest.raises(RuntimeError, match="isolated run of benchmarks.harness.memory:no_such_function failed"):
        h.run_isolated("benchmarks.harness.memory:no_such_function", {})


def test_best_per_sample_time_sweeps_batch_sizes() -> None:
    model = linear_model(np.ones((12, 3), np.float32), (3, 2, 2))
    best = h.best_per_sample_time(model, (3, 2, 2), batch_sizes=(1, 4, 16), seconds_per_size=0.03, rounds=3)
    assert set(best.table) <= {1, 4, 16} and 1 in best.table
    assert best.per_sample == min(best.table.values()) == best.table[best.batch_size] > 0
    assert best.limit(10) == pytest.approx(10 * best.per_sample)
    fixed = linear_model(np.ones((12, 3), np.float32), (3, 2, 2), batch=5)
    assert set(h.best_per_sample_time(fixed, None, seconds_per_size=0.01).table) == {5}


def test_machine_description() -> None:
    info = h.machine()
    assert info["logical_cpus"] >= 1 and "numpy" in info["versions"]
    assert "CPU" in h.machine_markdown(info)


def test_suite_lists_scripts_and_reads_their_options() -> None:
    names = benchmark_names()
    assert {"peers_lime", "peers_geex", "peers_rise", "geex_scaling"} <= set(names)
    assert not {"harness", "__main__", "__init__"} & set(names)
    accepted, required = script_flags("peers_geex")
    assert {"--geex-reference", "--device"} <= accepted and not required


def test_same_noise_as_our_geex() -> None:
    """peers_geex hands the reference our seeded noise: it must be the noise GEEX really applies."""
    from benchmarks.peers_geex import our_noise
    from onnxplain.blackbox import GEEX
    from onnxplain.blackbox.sampling import BLOCK
    from onnxplain.models.base import FunctionModel

    seen: list[np.ndarray] = []

    def f(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return np.stack([batch.reshape(len(batch), -1).sum(1), np.zeros(len(batch))], axis=1)

    model = FunctionModel(f, (1, 4, 4), 2)
    sigma, n = 0.5, 4 * BLOCK
    x = np.zeros((1, 4, 4), np.float32)  # x = baseline = 0: every query is ±(σ/2)·noise
    GEEX.reference(n_queries=n, sigma=sigma, seed=3, queries_per_call=BLOCK).explain(model, x, target=0)
    queries = np.concatenate(seen[2:])  # after f(x) and f(x̂)
    plus = np.concatenate([queries[k : k + BLOCK // 2] for k in range(0, n, BLOCK)])
    noise = our_noise(3, n // 2, (1, 4, 4), BLOCK)
    np.testing.assert_allclose(plus, noise * sigma / 2, rtol=1e-6, atol=1e-7)
    minus = np.concatenate([queries[k + BLOCK // 2 : k + BLOCK] for k in range(0, n, BLOCK)])
    np.testing.assert_allclose(minus, -plus, atol=1e-7)


def test_profile_splits_onnx_runtime_time_from_the_rest() -> None:
    import cProfile
    import pstats

    from benchmarks.profile_blackbox import own_times
    from onnxplain.models.onnx import OnnxModel

    model = OnnxModel(linear_model(np.ones((12, 3), np.float32), (3, 2, 2)), batch_size=4)
    x = np.random.default_rng(0).random((64, 3, 2, 2), dtype=np.float32)

    def numpy_work() -> None:
        for _ in range(20):
            np.sort(np.random.default_rng(1).random(20_000))

    prof = cProfile.Profile()
    prof.enable()
    model(x)
    numpy_work()
    prof.disable()
    in_ort, rest = own_times(pstats.Stats(prof))
    names = [name for name, _ in rest]
    total = sum(t for _, t in rest) + in_ort
    assert 0 < in_ort < total
    assert not any("onnxruntime_pybind11_state.run" in n for n in names)  # counted once, on its side
    assert any("sort" in n for n in names)
    assert [t for _, t in rest] == sorted((t for _, t in rest), reverse=True)
    assert model.n_queries == 64 and model.n_calls == 16  # 16 calls of 4 went through ORT's run


def test_write_section_never_eats_a_hand_written_section(tmp_path) -> None:
    # the layout that once deleted "Paper Table 1 reproduction": an empty block, a hand-written
    # section, then a second copy of the same block
    readme = tmp_path / "README.md"
    hand = "## Paper Table 1 reproduction\n\nhand-written text\n"
    readme.write_text(f"# B\n\n{h.begin_marker('p')}\n{h.end_marker('p')}\n\n{hand}\n{h.begin_marker('p')}\nold\n{h.end_marker('p')}\n")
    assert h.write_section("p", "new", readme)
    text = readme.read_text()
    assert hand in text and f"{h.begin_marker('p')}\nnew\n{h.end_marker('p')}" in text
    broken = tmp_path / "broken.md"
    broken.write_text(f"{h.begin_marker('q')}\n{h.begin_marker('r')}\n{h.end_marker('q')}\n")
    with pytest.raises(ValueError, match="hand-written"):
        h.write_section("q", "new", broken)
