"""The bad-input table: (API entry point × bad-input class) → the answer the API must give.

A :class:`Case` calls one entry point of the Python API with one kind of bad (or unusual but
valid) input. Its expectation is either a specific :mod:`onnxplain.errors` class, which the
call must raise with a one-line message, or ``None``: the input is valid (read-only or
non-contiguous arrays, float64 explicands) and the call must work, ``check`` then asserting the
result. :func:`run_case` runs one case in a fresh :class:`~tests.bad_input.env.Env` and records
what happened; the pytest suite asserts on the outcome and ``benchmarks/bad_input_table.py``
counts the outcomes per API group.

Rules every refusal is held to (``Outcome.failures``):

- the exception is the expected class (a subclass of ``OnnxplainError``), never a bare
  TypeError/ValueError/IndexError/AttributeError/RuntimeError from numpy or torch;
- its message is one non-empty line;
- no query was spent, unless the case says the problem can only show after a query
  (``may_query``: a model answering NaN, a torch module whose class count is unknown until its
  first forward);
- nothing was written under the case's directory (no output, no directory, no temporary file).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onnxplain.errors import OnnxplainError
from tests.bad_input.env import Env

Call = Callable[[Env], Any]
Check = Callable[[Env, Any], None]


@dataclass(frozen=True)
class Case:
    """One entry point called with one kind of input.

    Attributes:
        group: the API group it belongs to (a row of the published table).
        api: the entry point, e.g. ``"GEEX.explain"``.
        kind: the input class, e.g. ``"NaN explicand"``.
        call: makes the call in an :class:`Env` (builds its own models there).
        expect: the :mod:`onnxplain.errors` class the call must raise, or ``None`` (must work).
        may_query: the problem can only be seen after a query (the zero-query rule is waived).
        check: for ``expect=None``, asserts the result (gets the Env and the call's return value).
        writes: a valid call that writes files by design (its ``check`` asserts what it wrote);
            refusals never write.
    """

    group: str
    api: str
    kind: str
    call: Call
    expect: type[OnnxplainError] | None
    may_query: bool = False
    check: Check | None = None
    writes: bool = False

    @property
    def id(self) -> str:
        return f"{self.api}: {self.kind}"


@dataclass
class Outcome:
    """What one case did: the exception (if any), queries spent, paths written, check failure."""

    case: Case
    error: BaseException | None
    queries: int
    written: list[str] = field(default_factory=list)
    check_error: str | None = None

    @property
    def refusal(self) -> bool:
        return self.case.expect is not None

    @property
    def specific(self) -> bool:
        """A refusal answered with the expected onnxplain error and a one-line message."""
        e, want = self.error, self.case.expect
        return (
            want is not None
            and isinstance(e, want)
            and isinstance(e, OnnxplainError)
            and bool(str(e).strip())
            and "\n" not in str(e).strip()
        )

    @property
    def worked(self) -> bool:
        """A valid input that was accepted and whose result passed the case's check."""
        return self.case.expect is None and self.error is None and self.check_error is None

    @property
    def avoidable_queries(self) -> int:
        return 0 if (self.case.may_query or not self.refusal) else self.queries

    def failures(self) -> list[str]:
        """Every rule this outcome breaks (empty when the case passes)."""
        out = []
        if self.refusal:
            if not self.specific:
                got = "no exception" if self.error is None else f"{type(self.error).__name__}: {self.error}"
                out.append(f"expected {self.case.expect.__name__} with a one-line message, got {got}")  # type: ignore[union-attr]
            if self.avoidable_queries:
                out.append(f"{self.queries} queries spent before the refusal")
        elif self.error is not None:
            out.append(f"valid input refused: {type(self.error).__name__}: {self.error}")
        elif self.check_error is not None:
            out.append(f"result check failed: {self.check_error}")
        if self.written and (self.refusal or not self.case.writes):
            out.append(f"wrote {self.written}")
        return out


def run_case(case: Case, root: Path) -> Outcome:
    """Run ``case`` in a fresh Env under ``root`` (which must be empty or absent)."""
    env = Env(root)
    result: Any = None
    error: BaseException | None = None
    try:
        result = case.call(env)
    except Exception as exc:  # the outcome records it; the rules judge it
        error = exc
    check_error = None
    if error is None and case.check is not None and case.expect is None:
        try:
            case.check(env, result)
        except AssertionError as exc:
            check_error = str(exc) or traceback.format_exc(limit=2)
    return Outcome(case, error, env.queries, env.written(), check_error)


def all_cases() -> list[Case]:
    """Every case of every API group, in table order."""
    from tests.bad_input import cases_blackbox, cases_io, cases_metrics, cases_models, cases_whitebox

    cases: list[Case] = []
    for module in (cases_blackbox, cases_whitebox, cases_metrics, cases_models, cases_io):
        cases.extend(module.cases())
    ids = [c.id for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise AssertionError(f"duplicate case ids: {sorted(duplicates)}")
    return cases


def summarise(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    """Per API group: cases tried, refusals answered with the specific error, valid inputs that
    worked, cases that spent queries (and those that could have refused before querying), and
    cases that wrote anything."""
    groups: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        g = groups.setdefault(
            o.case.group,
            {
                "group": o.case.group,
                "cases": 0,
                "refusals": 0,
                "specific": 0,
                "valid": 0,
                "worked": 0,
                "spent_queries": 0,
                "avoidable_queries": 0,
                "wrote": 0,
                "failing": [],
            },
        )
        g["cases"] += 1
        g["refusals"] += o.refusal
        g["specific"] += o.specific
        g["valid"] += not o.refusal
        g["worked"] += o.worked
        g["spent_queries"] += bool(o.refusal and o.queries)
        g["avoidable_queries"] += bool(o.avoidable_queries)
        g["wrote"] += bool(o.written and (o.refusal or not o.case.writes))
        if o.failures():
            g["failing"].append(o.case.id)
    return list(groups.values())
