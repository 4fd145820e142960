"""``onnxplain bench``: list or run the benchmark scripts (``python -m benchmarks.<name>``).

Benchmarks live in the source checkout's ``benchmarks/`` directory (they are not installed with
the package); they are looked up in the current directory first, then beside the source tree of
an editable install.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from onnxplain.cli._common import Console, add_common
from onnxplain.errors import InvalidInputError


def examples() -> str:
    """The help's examples, naming the benchmarks of the checkout that is found (if any)."""
    try:
        names = list_benchmarks(find_root())
    except InvalidInputError:
        names = []
    one = names[0] if names else "NAME"
    listing = (
        "benchmarks in this checkout: " + ", ".join(names)
        if names
        else "no benchmarks/ directory here: run from a source checkout (or pass --root) to list them"
    )
    return f"""\
examples:
  onnxplain bench --list
  onnxplain bench {one}              runs python -m benchmarks.{one}
  onnxplain bench {one} -- --help    arguments after -- go to the benchmark
  onnxplain bench                          the whole suite (python -m benchmarks, or every script in turn)
  onnxplain bench -- --mnist ../data/mnist_test.npz   suite options after --

{listing}
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="list or run the speed/fidelity benchmarks (from a source checkout)",
        description="Run one benchmark script, or all of them, from the checkout's benchmarks/ directory.",
        epilog=examples(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", help="benchmark name (a module of benchmarks/); none = all")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="arguments passed to the benchmark (after --)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument("--root", type=Path, default=None, help="the checkout holding benchmarks/ (default: found)")
    add_common(p, device=False, batch=False, seed=False)
    p.set_defaults(run=run)


def find_root(explicit: Path | None = None) -> Path:
    """The directory that contains ``benchmarks/`` (the source checkout)."""
    candidates = [explicit] if explicit is not None else [Path.cwd(), Path(__file__).resolve().parents[3]]
    for root in candidates:
        if root is not None and (root / "benchmarks").is_dir():
            return root
    where = str(explicit) if explicit is not None else "the current directory or beside the installed sources"
    raise InvalidInputError(f"no benchmarks/ directory in {where}; run from a source checkout or pass --root.")


NOT_BENCHMARKS = {"__init__", "__main__", "harness", "conftest", "real_assets"}


def list_benchmarks(root: Path) -> list[str]:
    """Modules of ``benchmarks/`` that are benchmarks (not the harness, not private helpers): the
    rule of the suite runner's ``benchmark_names`` (``benchmarks/__main__.py``; a test keeps them equal)."""
    return sorted(
        p.stem
        for p in (root / "benchmarks").glob("*.py")
        if p.stem not in NOT_BENCHMARKS and not p.name.startswith("_")
    )


def run(args: argparse.Namespace) -> int:
    con = Console(args)
    root = find_root(args.root)
    names = list_benchmarks(root)
    if args.list:
        if args.json:
            con.emit_json({"root": str(root), "benchmarks": names})
        else:
            print("\n".join(names) if names else "(no benchmarks)")
        return 0
    extra = [a for a in (args.extra or []) if a != "--"]
    if args.name is not None and args.name.startswith("-"):  # "bench -- --option": no name, only options
        extra, args.name = [args.name, *extra], None
    if args.name is not None and args.name not in names:
        raise InvalidInputError(
            f"unknown benchmark {args.name!r}; available: {', '.join(names) or 'none'}."
        )
    if args.name is None and (root / "benchmarks" / "__main__.py").is_file():
        # The checkout's own suite runner (it also rewrites the machine block of benchmarks/README.md).
        return 0 if subprocess.call([sys.executable, "-m", "benchmarks", *extra], cwd=root) == 0 else 1
    selected = [args.name] if args.name else names
    if not selected:
        raise InvalidInputError(f"{root / 'benchmarks'} holds no benchmark scripts.")
    if extra and len(selected) > 1:  # pragma: no cover - only without a suite runner
        raise InvalidInputError("extra arguments can only be passed to one named benchmark.")
    failed = []
    for name in selected:
        con.note(f"== benchmarks.{name}")
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *extra], cwd=root)
        if code != 0:
            failed.append((name, code))
    if failed:
        con.note("failed: " + ", ".join(f"{n} (exit {c})" for n, c in failed))
        return 1
    return 0
