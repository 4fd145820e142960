"""The bad-input table as tests: one test per (entry point × input class), see ``table.py``.

Each refusal must raise the expected ``onnxplain.errors`` class with a one-line message, spend no
query (unless only a query can reveal the problem) and write nothing; each valid unusual input
must work and pass its check. The tests after the table make sure the table covers every
registered method and every API the issue names, and that its rules can fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from onnxplain.errors import InvalidInputError
from onnxplain.registry import BLACKBOX, WHITEBOX, get_method
from tests.bad_input.env import Env
from tests.bad_input.table import Case, Outcome, all_cases, run_case, summarise

CASES = all_cases()


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one intra-op thread is faster and fair to a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path / "case")
    assert not outcome.failures(), "; ".join(outcome.failures())


def test_every_registered_method_and_named_api_is_in_the_table() -> None:
    apis = {c.api for c in CASES}
    for name in [*BLACKBOX, *WHITEBOX]:
        assert f"{get_method(name).__name__}.explain" in apis, name
    named = {
        "aopc_deletion", "insertion_auc", "deletion_auc", "infidelity", "completeness_gap", "agreement",
        "random_order_reference", "randomisation_check", "FunctionModel", "OnnxModel", "TorchModel", "RemoteModel",
        "QueryModel.__call__", "export_onnx", "Explanation.save", "explain_dataset",
    }  # fmt: skip
    assert named <= apis, named - apis


def test_every_input_class_of_the_issue_is_tried_on_every_explainer() -> None:
    kinds_of: dict[str, set[str]] = {}
    for c in CASES:
        kinds_of.setdefault(c.api.split(".")[0], set()).add(c.kind)
    must = {"NaN explicand", "int64 explicand", "float64 explicand", "2-D explicand (H,W)", "empty batch",
            "target = num_classes", "negative target", "fractional target", "too many targets",
            "read-only explicand", "Fortran-order explicand", "bool target", "string target"}  # fmt: skip
    for name in [*BLACKBOX, *WHITEBOX]:
        cls = get_method(name)
        assert must <= kinds_of[cls.__name__], (name, must - kinds_of[cls.__name__])
        if cls.budget_param:
            assert {f"zero budget ({cls.budget_param}=0)", f"bool budget ({cls.budget_param}=True)"} <= kinds_of[cls.__name__]


class _Harness:
    """Runs made-up cases, each in a directory of its own."""

    def __init__(self, root: Path) -> None:
        self.root, self.n = root, 0

    def __call__(self, call, expect=InvalidInputError, **kw) -> Outcome:
        self.n += 1
        return run_case(Case("g", "api", "kind", call, expect, **kw), self.root / str(self.n))


def test_the_rules_catch_what_they_must(tmp_path: Path) -> None:
    """Bare numpy errors, spent queries, written files and wrong results fail a case."""
    _fake = _Harness(tmp_path)

    def bare(env: Env) -> None:
        np.asarray([[1.0], [1.0, 2.0]], dtype=float)

    def spends(env: Env) -> None:
        env.model()(env.x(2))
        raise InvalidInputError("refused late.")

    def writes(env: Env) -> None:
        (env.root / ".out.tmp").write_text("half")
        raise InvalidInputError("refused after writing.")

    def two_lines(env: Env) -> None:
        raise InvalidInputError("first line\nsecond line")

    assert "expected InvalidInputError" in _fake(bare).failures()[0]
    assert "queries spent" in " ".join(_fake(spends).failures())
    assert _fake(spends, may_query=True).failures() == []
    assert "wrote" in " ".join(_fake(writes).failures())
    assert _fake(two_lines).failures()
    assert "valid input refused" in _fake(bare, expect=None).failures()[0]

    def wrong(env: Env, result: object) -> None:
        raise AssertionError("map differs")

    assert "map differs" in _fake(lambda env: 1, expect=None, check=wrong).failures()[0]
    summary = summarise([_fake(bare), _fake(spends), _fake(lambda env: 1, expect=None)])
    assert summary == [
        {"group": "g", "cases": 3, "refusals": 2, "specific": 1, "valid": 1, "worked": 1, "spent_queries": 1,
         "avoidable_queries": 1, "wrote": 0, "failing": ["api: kind", "api: kind"]}
    ]  # fmt: skip


def test_the_benchmark_counts_the_same_table() -> None:
    """benchmarks/bad_input_table.py on one group: its counts and its markdown row."""
    from benchmarks.bad_input_table import markdown, run

    res = run(["Explanation files"])
    (group,) = res["groups"]
    n = sum(c.group == "Explanation files" for c in CASES)
    assert (group["cases"], group["wrote"], res["failing"]) == (n, 0, [])
    assert group["specific"] == group["refusals"] and group["worked"] == group["valid"] == 1
    res["command"] = "python -m benchmarks.bad_input_table"
    text = markdown(res)
    assert f"| Explanation files | {n} | {n - 1} / {n - 1} | 1 / 1 | 0 (0) | 0 |" in text
