"""Bad input across the Python API (issue 17.7): the case table of ``tests/bad_input``, counted per API group.

Every case calls one entry point (an explainer, a metric, a model adapter, the exporter, the
dataset runner, ``Explanation.save``) with one kind of bad or unusual input, in a scratch
directory of its own, on tiny counting models. Published per API group: cases tried; refusals
answered with the specific ``onnxplain.errors`` class and a one-line message; valid unusual
inputs (read-only, strided, float64 arrays, ...) that worked and gave the contiguous copy's
result; refusals that spent queries (those that could have refused before querying are the
defects, the others are problems only an answer can reveal, such as a model answering NaN); and
cases that wrote anything where they must not (must be 0). No timing: a count of behaviours,
the same on any machine.

    python -m benchmarks.bad_input_table [--groups "metrics" "export"] [--no-save]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import harness as h

NAME = "bad_input_table"


def run(groups: Sequence[str] | None = None) -> dict[str, Any]:
    import torch

    from tests.bad_input.table import all_cases, run_case, summarise

    torch.set_num_threads(1)
    cases = [c for c in all_cases() if not groups or c.group in groups]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="onnxplain-bad-input-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, case in enumerate(cases):
            outcomes.append(run_case(case, Path(tmp) / str(i)))
    failing = [{"case": o.case.id, "group": o.case.group, "failures": o.failures()} for o in outcomes if o.failures()]
    return {"groups": summarise(outcomes), "failing": failing, "n_cases": len(cases)}


def markdown(res: dict[str, Any]) -> str:
    rows, total = [], {k: 0 for k in ("cases", "refusals", "specific", "valid", "worked", "spent_queries", "avoidable_queries", "wrote")}
    for g in res["groups"]:
        for k in total:
            total[k] += g[k]
        rows.append(_row(g["group"], g))
    rows.append(_row("**all**", total))
    table = h.md_table(
        [
            "API group",
            "cases tried",
            "refused with the specific error",
            "valid unusual input that worked",
            "refusals that spent queries (avoidable)",
            "wrote anything (must be 0)",
        ],
        rows,
    )
    lines = ["### Bad input across the Python API", "", table, ""]
    lines.append(
        f"- Command: `{res['command']}` ({res['n_cases']} cases; the same table `tests/bad_input/test_table.py` "
        "asserts case by case). Queries are counted inside the tiny models' own functions/modules, files under "
        "each case's scratch directory."
    )
    lines.append(
        "- Refusals that spend queries unavoidably: a model or module answering NaN, a torch module whose class "
        "count or input shape shows only on its first forward, labels checked against the exported class count."
    )
    if res["failing"]:
        lines.append(f"- **{len(res['failing'])} cases break a rule**: " + "; ".join(f["case"] for f in res["failing"][:20]))
    else:
        lines.append("- Every case follows the rules (specific error, one line, no avoidable query, nothing written).")
    return "\n".join(lines)


def _row(name: str, g: dict[str, Any]) -> list[Any]:
    return [
        name,
        g["cases"],
        f"{g['specific']} / {g['refusals']}",
        f"{g['worked']} / {g['valid']}",
        f"{g['spent_queries']} ({g['avoidable_queries']})",
        g["wrote"],
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", help="API groups to run (default: all)")
    parser.add_argument("--no-save", action="store_true", help="print only (smoke runs): no results file, no README block")
    args = parser.parse_args(argv)
    res = run(args.groups)
    res["command"] = h.command(argv)
    status = h.publish(NAME, res, markdown(res), save=not args.no_save and not args.groups)
    return status if not res["failing"] else 1


if __name__ == "__main__":
    sys.exit(main())
