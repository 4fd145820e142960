"""benchmarks/real_fidelity.py without the real-model cache: the whole pipeline on a tiny fake cache
(a small conv net with a torch twin, three photos), the resume logic, the metrics against direct
library calls, the pooling against torch, the aggregation, the table and the goals."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks import real_assets as ra
from benchmarks import real_fidelity as rf
from benchmarks.__main__ import benchmark_names
from benchmarks.fidelity import metrics as fm
from benchmarks.fidelity import report
from benchmarks.fidelity.methods import REFERENCE, parse_methods, random_map
from benchmarks.fidelity.progress import Progress
from benchmarks.fidelity.runner import PhotoRun, Plan, Subject, choose_photos, run
from benchmarks.fidelity.store import Item, WorkDir
from benchmarks.fidelity.summary import Row, aopc_of_curves, collect, jackknife

SIZE = 32


def _tiny_net() -> bytes:
    """3×32×32 → Conv(3→4, 3×3, stride 2) → ReLU → Flatten → MatMul → 5 logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(size=4).astype(np.float32) * 0.1, "b"),
        numpy_helper.from_array(rng.normal(size=(4 * 16 * 16, 5)).astype(np.float32) * 0.05, "fc"),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "fc"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("fake-real-cache")
    (root / "models").mkdir()
    (root / "photos").mkdir()
    (root / "models" / "tiny.onnx").write_bytes(_tiny_net())
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    photos = []
    for i, (name, labels) in enumerate([("plain", []), ("cat", ["tabby"]), ("dog", ["beagle"])]):
        smooth = np.stack([np.sin(3 * xx + i), np.cos(2 * yy - i), xx * yy], axis=-1) * 0.5 + 0.5
        pixels = np.clip(smooth + 0.05 * rng.normal(size=smooth.shape), 0, 1)
        Image.fromarray((pixels * 255).astype(np.uint8), "RGB").save(root / "photos" / f"{name}.png")
        photos.append(
            {"name": name, "path": f"photos/{name}.png", "labels": labels, "label_indices": [1] * len(labels)}
        )
    model = {
        "name": "tiny",
        "onnx": "models/tiny.onnx",
        "input_shape": [3, SIZE, SIZE],
        "onnx_kwargs": {"layout": "NCHW", "preprocess": None},
        "torch": {"kind": "onnx_graph", "onnx": "models/tiny.onnx"},
    }
    manifest = {"format": ra.MANIFEST_FORMAT, "models": [model], "photos": photos}
    (root / ra.MANIFEST).write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def stored(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, list[PhotoRun]]:
    """One run of the pipeline (geex, rise at 2 budgets; saliency; ig-ref; random) on 2 photos."""
    specs = parse_methods("geex,rise,saliency")
    plan = Plan(
        cache, ("tiny",), ("cat", "dog"), (40, 80), (0,), tuple(specs), tmp_path_factory.mktemp("work")
    )
    return plan, run(plan)


def test_photos_labelled_first_and_the_script_is_a_benchmark(cache: Path) -> None:
    assert choose_photos(cache, 2) == ["cat", "dog"]  # labelled first, then the unlabelled one
    assert choose_photos(cache, 5) == ["cat", "dog", "plain"]
    assert "real_fidelity" in benchmark_names() and "fidelity" not in benchmark_names()


def test_methods_always_include_the_reference_and_random() -> None:
    keys = [s.key for s in parse_methods("rise,geex")]
    assert keys == ["rise", "geex", REFERENCE, "random"]
    every = [s.key for s in parse_methods(None)]
    from onnxplain import registry

    assert every == [*registry.BLACKBOX, *registry.WHITEBOX, REFERENCE, "random"]
    ref = next(s for s in parse_methods(None) if s.key == REFERENCE).build(None, None)
    assert (ref.steps, ref.baseline.describe()) == (128, "blur(31,5.0)")
    geex = parse_methods("geex")[0]
    assert geex.build(1000, 3).params()[geex.cls().budget_param] == 1000
    assert geex.build(1000, 3).seed == 3
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("geex,nope")


def test_pipeline_stores_everything_and_a_rerun_computes_nothing(
    stored: tuple[Plan, list[PhotoRun]], tmp_path: Path
) -> None:
    plan, first = stored
    shutil.copytree(plan.work, tmp_path / "work")
    plan = dataclasses.replace(plan, work=tmp_path / "work")
    # geex, rise at 2 budgets + saliency (deterministic: one map) + ig-ref + random, per photo
    assert [len(r.explained) for r in first] == [7, 7]
    assert all(r.metric_maps == 7 and not r.failed for r in first)
    assert {i.seed for r in first for i, _, _ in r.explained if i.method in ("saliency", REFERENCE)} == {None}
    again = run(plan)
    assert [(len(r.explained), r.metric_maps) for r in again] == [(0, 0), (0, 0)]
    # an interrupted run: one record lost -> only that map (and its metrics) is redone
    WorkDir(plan.work)._base(Item("tiny", "dog", "rise", 80, 0)).with_suffix(".json").unlink()
    redo = run(plan)
    assert [[(i.method, i.budget) for i, _, _ in r.explained] for r in redo] == [[], [("rise", 80)]]
    assert [r.metric_maps for r in redo] == [0, 1]
    # a changed method configuration -> only that method is redone
    changed = [dataclasses.replace(s, kwargs={"sigma": 0.2}) if s.key == "geex" else s for s in plan.specs]
    redo = run(dataclasses.replace(plan, specs=tuple(changed)))
    assert all(
        sorted((i.method, i.budget) for i, _, _ in r.explained) == [("geex", 40), ("geex", 80)] for r in redo
    )


def test_stored_metrics_equal_direct_library_calls(cache: Path, stored: tuple[Plan, list[PhotoRun]]) -> None:
    from onnxplain.evaluation import aopc_deletion, deletion_auc, insertion_auc
    from onnxplain.evaluation.agreement import agreement

    work, subject = WorkDir(stored[0].work), Subject(cache, "tiny")
    x = ra.photos(cache, SIZE, names=["cat"])[0][0]
    target = int(subject.query(x[None]).argmax())
    step = fm.step_pixels(SIZE, SIZE)  # round(0.01 · 1024) = 10
    assert step == 10
    item = Item("tiny", "cat", "rise", 80, 0)
    rec = work.record(item)
    assert rec is not None and rec["info"]["target"] == target
    saliency = work.load_map(item)
    curves = rec["metrics"]["curves"]
    aopc = aopc_deletion(subject.query, x, saliency, target=target, replacement="blur", stride=step)
    assert curves["aopc"] == pytest.approx(aopc.score, abs=1e-9)  # one photo: both aggregates agree
    np.testing.assert_allclose(curves["aopc_curve"], aopc.curve, atol=1e-9)
    ins = insertion_auc(subject.query, x, saliency, target=target, step=step, substrate="blur")
    assert curves["insertion"] == pytest.approx(ins.score, abs=1e-9)
    dele = deletion_auc(subject.query, x, saliency, target=target, step=step, substrate="zero")
    assert curves["deletion"] == pytest.approx(dele.score, abs=1e-9) and dele.score != ins.score
    rand = work.record(Item("tiny", "cat", "random", None, 0))
    assert rand is not None
    ref = aopc_deletion(
        subject.query, x, random_map(SIZE, SIZE, 0, "cat"), target=target, replacement="blur", stride=step
    )
    assert rand["metrics"]["curves"]["aopc"] == pytest.approx(ref.score, abs=1e-9)
    pixel = agreement(saliency, work.load_map(Item("tiny", "cat", REFERENCE, None, None)), fractions=(0.1,))
    assert rec["metrics"]["agreement"]["pixel"]["spearman"] == pytest.approx(pixel["spearman"].score)
    assert set(rec["metrics"]["agreement"]) == {"pixel", "28x28", "14x14"}


@pytest.mark.parametrize("shape,size", [((224, 224), 14), ((260, 260), 28), ((260, 260), 14), ((37, 50), 28)])
def test_pool_is_adaptive_average_pooling(shape: tuple[int, int], size: int) -> None:
    m = np.random.default_rng(0).normal(size=shape)
    expected = F.adaptive_avg_pool2d(torch.from_numpy(m)[None, None], size)[0, 0].numpy()
    np.testing.assert_allclose(fm.pool(m, size), expected, rtol=1e-10, atol=1e-12)


def test_agreement_scales_skip_scales_not_smaller_than_the_map() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20, 20))
    res = fm.agreement_scales(a, a + 0.01 * rng.normal(size=a.shape))
    assert set(res) == {"pixel", "14x14"} and res["14x14"]["spearman"] > 0.99
    assert fm.agreement_scales(a, -a)["pixel"]["spearman"] == pytest.approx(-1.0)


def test_aggregates_are_the_authors_aopc_and_a_jackknife_error() -> None:
    from onnxplain.evaluation.aopc import aopc_scores

    curves = np.random.default_rng(2).uniform(0.1, 1.0, size=(6, 11))
    assert aopc_of_curves(curves) == pytest.approx(aopc_scores(curves, "curves")[0])
    v = np.random.default_rng(3).normal(size=9)
    # for the mean, the jackknife standard error is exactly s/√n
    assert jackknife(lambda d: float(d.mean()), v) == pytest.approx(v.std(ddof=1) / 3)
    assert np.isnan(jackknife(lambda d: float(d.mean()), v[:1]))


def _row(
    key: str, budget: int | None, aopc_level: float, insertion: list[float], spearman: float = 0.0
) -> Row:
    """A row whose per-photo AOPC curves are [1, c, …, c] (AOPC = 10/11 · (1 − c))."""
    kind = "blackbox" if budget else ("random" if key == "random" else "whitebox")
    row = Row(key, key, kind, budget)
    c = 1 - aopc_level * 11 / 10
    for i, ins in enumerate(insertion):
        row.per_photo[f"p{i}"] = {
            "aopc_curve": [1.0] + [c] * 10,
            "insertion": ins,
            "deletion": 0.1,
            "seconds": 2.0,
            "n_queries": budget or 0,
            "n_backward": 0,
            "agreement": {"14x14": {"spearman": spearman, "top10": 0.5}},
        }
    return row


def test_goals_are_met_or_not_with_their_numbers() -> None:
    rows = [
        _row("geex", 2000, 0.87, [0.60, 0.50, 0.70]),
        _row("geex", 5000, 0.90, [0.62, 0.55, 0.70], spearman=0.55),
        _row("rise", 2000, 0.85, [0.61, 0.52, 0.70]),
        _row("rise", 5000, 0.88, [0.60, 0.56, 0.69]),
        _row("lime", 5000, 0.91, [0.5, 0.5, 0.5]),
        _row(REFERENCE, None, 0.93, [0.7, 0.7, 0.7]),
    ]
    lines = [g.line() for g in report.goals(rows)]
    assert (
        lines[0] == "- AOPC at 5000: GEEX ≥ 0.95 × IG(blur): **met** (GEEX 0.9000, 0.95 × IG 0.9300 = 0.8835)"
    )
    assert lines[1].startswith("- AOPC at 5000: GEEX > RISE: **met** (GEEX 0.9000, RISE 0.8800")
    assert lines[2].startswith("- AOPC at 5000: GEEX > LIME: **not met** (GEEX 0.9000, LIME 0.9100")
    assert lines[3] == "- insertion AUC at 5000: GEEX ≥ RISE: **met** (GEEX 0.623, RISE 0.617)"
    assert "**met** (GEEX@2000 0.8700, 0.95 × GEEX@5000 0.9000 = 0.8550)" in lines[4]
    # paired differences −0.01, −0.02, 0: mean −0.01, SE 0.0058 -> lower beyond one SE: not met
    assert "**not met**" in lines[5] and "paired difference -0.010 ± 0.006 over 3 photos" in lines[5]
    assert lines[6].endswith("**met** (mean 0.550 ± 0.000)")
    missing = report.goals(rows[:1])
    assert missing[0].met is None and "needs geex@5000, ig-ref" in missing[0].line()


def test_table_has_one_row_per_method_and_budget() -> None:
    rows = [
        _row("geex", 5000, 0.90, [0.6, 0.7]),
        _row("random", None, 0.5, [0.4, 0.4]),
        Row("lime", "lime", "blackbox", 5000),
    ]
    table = report.model_table(rows, n_photos=3).splitlines()
    assert table[0].startswith("| method | budget | AOPC, paper protocol ↑ | insertion AUC ↑")
    assert len(table) == 4  # header, rule, geex, random; lime has no photo and no row
    assert table[2].startswith(
        "| geex (2 of 3 photos) | 5000 | 0.9000 ± 0.0000 | 0.650 ± 0.050 | 0.100 ± 0.000 |"
    )
    assert "| random (2 of 3 photos) | — | 0.5000 ± 0.0000 | 0.400 ± 0.000 |" in table[3]


def test_eta_uses_what_was_observed() -> None:
    a1, a2, b1 = (Item("m", p, "geex", 1000, 0) for p in ("p1", "p2", "p3"))
    r = Item("m", "p2", "rise", 2000, 0)
    wb = Item("m", "p2", "agi", None, None)
    progress = Progress([a1, a2, b1, r, wb], stream=open("/dev/null", "w"))  # noqa: SIM115
    assert progress.eta() == (0.0, False)
    progress.done(a1, 10.0, 1000, "", echo=False)
    eta, complete = progress.eta()
    assert not complete and eta == pytest.approx(10 + 10 + 20)  # two more geex, rise at 10 ms/query
    progress.done(wb, 4.0, 0, "", echo=False)
    assert progress.eta() == (pytest.approx(40.0), True)


def test_the_script_end_to_end_and_its_errors(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--cache",
        str(cache),
        "--models",
        "tiny",
        "--photos",
        "2",
        "--budgets",
        "40",
        "--methods",
        "geex",
    ]
    assert rf.main([*args, "--work", str(tmp_path / "w"), "--no-save"]) == 0
    out = capsys.readouterr().out
    assert "#### tiny (3×32×32, step 10 pixels)" in out and "| geex | 40 |" in out
    assert "- AOPC at 5000: GEEX ≥ 0.95 × IG(blur): **not evaluated** (needs geex@5000)" in out
    assert (tmp_path / "w" / "real_fidelity.svg").is_file()  # --no-save: the plot stays in the work dir
    for bad, message in [
        (["--budgets", "0"], "--budgets must be positive integers"),
        (["--methods", "nope"], "unknown method(s) nope"),
        (["--models", "resnet"], "no model 'resnet'"),
        (["--photos", "0"], "--photos must be at least 1"),
    ]:
        assert rf.main([*args, *bad, "--work", str(tmp_path / "w")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert rf.main(["--cache", str(tmp_path / "none"), "--work", str(tmp_path / "w")]) == 2
    assert "build_real_cache.py" in capsys.readouterr().err


def test_random_order_is_seeded_and_differs_between_photos() -> None:
    a, b = random_map(7, 9, 5, "cat"), random_map(7, 9, 5, "dog")
    np.testing.assert_array_equal(a, random_map(7, 9, 5, "cat"))
    assert a.shape == (7, 9) and len(np.unique(a)) == 63 and not np.array_equal(a, b)
    assert not np.array_equal(a, random_map(7, 9, 6, "cat"))


def test_collect_reads_what_run_stored(stored: tuple[Plan, list[PhotoRun]]) -> None:
    plan = dataclasses.replace(stored[0], specs=tuple(parse_methods("rise")))
    rows = collect(plan, "tiny", (SIZE, SIZE))
    by = {(r.key, r.budget): r for r in rows}
    assert set(by) == {("rise", 40), ("rise", 80), (REFERENCE, None), ("random", None)}
    assert all(r.n == 2 for r in rows)
    ref = by[(REFERENCE, None)]
    assert ref.mean_se("", "14x14", "spearman")[0] == pytest.approx(1.0)
    assert by[("rise", 80)].mean_se("n_queries")[0] == 81  # the budget plus f(x)


def test_method_variants_are_rows_of_their_own() -> None:
    specs = parse_methods("all, GEEX[baseline='blur', sigma=0.05]")
    variant = specs[-3]
    assert variant.key == "geex[baseline='blur', sigma=0.05]" and variant.kwargs == {
        "baseline": "blur",
        "sigma": 0.05,
    }
    method = variant.build(2000, 1)
    assert (method.n_queries, method.sigma, method.describe_baseline(), method.seed) == (
        2000,
        0.05,
        "blur(31,5.0)",
        1,
    )
    assert Item("m", "p", variant.key, 2000, 1).stem == "geex_baseline=_blur___sigma=0.05_-b2000-s1"
    assert [s.key for s in specs[-2:]] == [REFERENCE, "random"]
    with pytest.raises(ValueError, match="variant"):
        parse_methods("rise[p_keep=-1]")
    with pytest.raises(ValueError, match="variant"):
        parse_methods("rise[nonsense=1]")


def test_agreement_table_orders_scales_from_pixels_to_coarse() -> None:
    row = _row("geex", 5000, 0.9, [0.5])
    row.per_photo["p0"]["agreement"] = {
        s: {"spearman": v, "top10": v} for s, v in [("14x14", 0.3), ("pixel", 0.1), ("28x28", 0.2)]
    }
    lines = report.agreement_table([row]).splitlines()
    assert lines[0] == (
        "| method | budget | Spearman pixel | Spearman 28×28 | Spearman 14×14 | top-10 % pixel | top-10 % 28×28 | top-10 % 14×14 |"
    )
    assert lines[2] == "| geex | 5000 | 0.100 | 0.200 | 0.300 | 0.100 | 0.200 | 0.300 |"
