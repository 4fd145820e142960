"""Mutation testing of the black-box explainers and the evaluation metrics (issue 22).

A mutant is the package with one small change (an operator, a constant, a comparison, an
argument dropped…); a test suite that still passes on it has let it *survive*. The kill rate of
``src/onnxplain/blackbox/`` and ``src/onnxplain/evaluation/`` measures whether the tests pin the
estimators down, not only that they run.

Tool: `mutmut <https://github.com/boxed/mutmut>`_ 3 (pure Python, installs without touching
numpy/torch/onnxruntime; ``pip install -e ".[bench]"``). It mutates functions and methods
(module-level constants are not mutated), records during one instrumented run of the selected tests
which tests reach each function, and runs each mutant against **only those tests**, forked from
a warm server process (``forkserver``: torch and ONNX Runtime thread pools do not survive a
plain fork), stopping at the first failure (``-x``).

Scope, to stay tractable on 2 shared cores:

- mutated: every module of ``onnxplain/blackbox/`` and ``onnxplain/evaluation/`` (``--only`` narrows);
- tests: ``tests/blackbox`` and ``tests/evaluation`` only (the directories that exercise those
  packages; the CLI, report and distributed tests reach them only through these). Tests that
  spawn a subprocess (``test_import_does_not_load_torch``) cannot see a mutant and are left out,
  and so are the self-comparisons and the slow demo-CNN statistic (``EXCLUDED_TESTS``);
- ``--sample N``: a uniform random sample of N mutants per package (seeded), when the full run
  (4237 mutants, hours on 2 cores) does not fit;
- the copy is built in ``--work-dir`` (src/, the two test directories, pyproject.toml with a
  ``[tool.mutmut]`` section), never in the repository; mutmut keeps its results there, so a
  re-run only tests the mutants it has not tried yet (``--fresh`` starts over).

``--work-dir`` is required, so that ``python -m benchmarks`` (which runs every script) skips this
one: it takes hours, not minutes. The exact command and the numbers it printed are in
``benchmarks/README.md`` ("Mutation testing"); the raw counts and every survivor are saved to
``benchmarks/results/mutation.json``.

    python -m benchmarks.mutation --work-dir /tmp/onnxplain-mutation [--max-children 2]
        [--sample 200 [--sample-seed 0]] [--only 'onnxplain.blackbox.lime*'] [--fresh] [--no-save]
    python -m benchmarks.mutation --work-dir /tmp/onnxplain-mutation --replant

``--replant`` re-plants the five bugs of issue 22 that survived the suite before (``PLANTED``),
one at a time in a copy of src/, runs ``tests/blackbox`` against each and lists the tests that
catch it (saved to ``benchmarks/results/mutation_replant.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import harness as h

NAME = "mutation"
PACKAGES = ("src/onnxplain/blackbox", "src/onnxplain/evaluation")
TEST_DIRS = ("tests/blackbox", "tests/evaluation")
EXCLUDED_TESTS = (
    # runs a fresh interpreter, which imports the original package, not the mutant
    "tests/blackbox/test_package.py::test_import_does_not_load_torch",
    # the explainer compared with itself (ONNX vs torch model, numpy vs torch arrays): cannot
    # tell a wrong estimator from a right one, and costs seconds per mutant on the demo CNN
    "tests/blackbox/test_geex.py::test_onnx_and_torch_models_give_the_same_map",
    "tests/blackbox/test_rise.py::test_onnx_and_torch_models_give_the_same_map",
    "tests/blackbox/test_lime.py::test_onnx_and_torch_models_give_the_same_map",
    "tests/blackbox/test_geex.py::test_torch_backend_feeds_the_onnx_model_device_tensors",
    # 30 000 demo-CNN queries for a statistical bound; the exact oracles check the same estimator
    "tests/blackbox/test_geex.py::test_completeness_on_the_demo_cnn",
)


# mutmut's exit-code convention (mutmut.__main__.status_by_exit_code), the statuses we report.
STATUS = {
    1: "killed",
    3: "killed",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    35: "suspicious",
    36: "timeout",
    37: "caught by type check",
    -11: "segfault",
    -9: "segfault",
    None: "not checked",
}


def mutmut_config() -> str:
    """The ``[tool.mutmut]`` section appended to the copy's pyproject.toml."""
    only = [f"{p}/*" for p in PACKAGES]
    selection = [*TEST_DIRS, *(f"--deselect={t}" for t in EXCLUDED_TESTS)]
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = {json.dumps(only)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(selection)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-W", "ignore"]\n'
        # torch and ONNX Runtime thread pools do not survive fork(): fork workers from a clean server
        'process_isolation = "forkserver"\n'
        # CPU-time limit = (tests' measured time + 20 s) × 5 × 2: a fixture that exports ONNX
        # models (sanity.py) costs far more CPU than its tests' call time; a real hang still ends
        "timeout_constant = 20.0\n"
        "timeout_multiplier = 5.0\n"
    )


def build_copy(work: Path, fresh: bool) -> None:
    """The tree mutmut runs in: src/, the selected test directories and pyproject.toml."""
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    root = h.ROOT
    for sub in ("src", *TEST_DIRS):
        target = work / sub
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(root / sub, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("conftest.py",):
        if (root / "tests" / name).exists():
            shutil.copy2(root / "tests" / name, work / "tests" / name)
    text = (root / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(text + mutmut_config())
    # mutmut regenerates the mutants of a file whose source is newer than its mutated copy
    # (copytree keeps the repository's mtimes) and keeps the verdicts of unchanged functions.
    # Which tests reach which function is recollected every run: the tests may have changed.
    stats = work / "mutants" / "mutmut-stats.json"
    if stats.exists():
        stats.unlink()


# The five single-line bugs of issue 22 that survived the suite before these tests, re-planted by
# hand: (name, file, original line fragment, planted fragment).
PLANTED: tuple[tuple[str, str, str, str], ...] = (
    (
        "1. GEEX/GE estimator scaled by n/(n+1)",
        "src/onnxplain/blackbox/geex.py",
        "return queries.total() / (queries.n * ",
        "return queries.total() / ((queries.n + 1) * ",
    ),
    (
        "2. unpaired GEEX walks half the path (pair index for single queries)",
        "src/onnxplain/blackbox/geex.py",
        "first = lo // 2 if est.mirror else lo",
        "first = lo // 2",
    ),
    (
        "3. query count and budget pre-check wrong for a batch (GE and the rest)",
        "src/onnxplain/blackbox/base.py",
        "n_total = len(batch) * self.queries_per_explicand(",
        "n_total = len(batch) - 1 + self.queries_per_explicand(",
    ),
    (
        "3b. query count and budget pre-check wrong for a batch of a method without a baseline (GE, LIME)",
        "src/onnxplain/blackbox/base.py",
        "n_total = len(batch) * self.queries_per_explicand(",
        "n_total = (len(batch) if self.uses_baseline else 1) * self.queries_per_explicand(",
    ),
    (
        "4. LIME kernel fed the hidden count instead of the shown one",
        "src/onnxplain/blackbox/lime.py",
        "weights = kernel_weights(d.sum(1), self.k, kernel_width)",
        "weights = kernel_weights(self.k - d.sum(1), self.k, kernel_width)",
    ),
    (
        "5. LIME budget pre-check short by the f(x) queries",
        "src/onnxplain/blackbox/lime.py",
        "return self.n_samples + 1  # f(x)",
        "return self.n_samples  # f(x)",
    ),
)


def replant(work: Path) -> list[dict[str, Any]]:
    """Each planted bug alone in a copy of src/, against the black-box tests: which tests fail."""
    out = []
    for name, rel, old, new in PLANTED:
        copy = work / "replant"
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(h.ROOT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
        path = copy / rel
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(f"{name}: the line to mutate is not (uniquely) in {rel}; update PLANTED.")
        path.write_text(text.replace(old, new))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(copy / "src"), str(h.ROOT)]))
        cmd = [sys.executable, "-m", "pytest", "tests/blackbox", "-q", "-rf", "-p", "no:cacheprovider"]
        proc = subprocess.run(cmd, cwd=h.ROOT, env=env, capture_output=True, text=True)
        failed = sorted({line.split()[1] for line in proc.stdout.splitlines() if line.startswith("FAILED ")})
        out.append({"bug": name, "caught": proc.returncode != 0 and bool(failed), "failing_tests": failed})
        print(f"{name}: {len(failed)} failing tests", flush=True)
    return out


def all_mutants(work: Path) -> dict[str, list[str]]:
    """Every mutant name, per package (``onnxplain.blackbox`` / ``onnxplain.evaluation``), from the
    ``.meta`` files mutmut wrote when it generated the mutants."""
    out: dict[str, list[str]] = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        for key in json.loads(meta.read_text()).get("exit_code_by_key", {}):
            out.setdefault(".".join(key.split(".")[:2]), []).append(key)
    return out


def generate(work: Path) -> None:
    """Generate the mutants and collect the test stats without testing any mutant: ``mutmut run``
    with a name that matches no mutant does both, then stops (with an assertion error)."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    cmd = [shutil.which("mutmut") or "mutmut", "run", "no-such-mutant__mutmut_0"]
    subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sample(work: Path, per_package: int, seed: int) -> list[str]:
    """A uniform random sample of ``per_package`` mutants of each package (all when fewer)."""
    import random

    rng = random.Random(seed)
    picked: list[str] = []
    for _package, names in sorted(all_mutants(work).items()):
        picked += sorted(rng.sample(names, min(per_package, len(names))))
    return picked


def run_mutmut(work: Path, max_children: int, only: Sequence[str]) -> tuple[int, float]:
    """``mutmut run`` in the copy; returns (exit status, wall seconds).

    Without ``only``, mutants that already have a verdict in ``work`` are skipped (a run cut
    short resumes); mutants named by ``only`` globs are always (re-)run.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the copy's mutants/src must be the only onnxplain on the path
    exe = shutil.which("mutmut")
    base = [exe] if exe else [sys.executable, "-c", "from mutmut.__main__ import cli; cli()"]
    t0 = time.perf_counter()
    cmd = [*base, "run", "--max-children", str(max_children), *only]
    print("$ (cd", work, "&&", "mutmut", *cmd[len(base) :], ")", flush=True)
    status = subprocess.run(cmd, cwd=work, env=env).returncode
    return status, time.perf_counter() - t0


def collect(work: Path, names: Sequence[str] = ()) -> dict[str, Any]:
    """Per-module counts and the survivors, read from mutmut's ``.meta`` files (only the mutants
    ``names`` when given, e.g. a sample)."""
    per_module: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    wanted = set(names)
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        module = str(meta.relative_to(work / "mutants")).removesuffix(".meta")
        counts = per_module.setdefault(module, Counter())
        for key, code in data.get("exit_code_by_key", {}).items():
            if wanted and key not in wanted:
                continue
            status = STATUS.get(code, f"exit {code}")
            counts[status] += 1
            if status in ("survived", "no tests", "timeout", "suspicious"):
                survivors.append(f"{key}: {status}")
    total = Counter()
    for counts in per_module.values():
        total.update(counts)
    return {
        "per_module": {m: dict(c) for m, c in per_module.items()},
        "total": dict(total),
        "kill_rate": kill_rate(total),
        "not_killed": survivors,
    }


def kill_rate(counts: Counter[str] | dict[str, int]) -> float:
    """Killed (a test failed or timed out) over all mutants that were tried."""
    tried = sum(v for k, v in counts.items() if k not in ("not checked", "skipped"))
    killed = sum(counts.get(k, 0) for k in ("killed", "timeout", "caught by type check", "segfault"))
    return killed / tried if tried else float("nan")


def markdown(result: dict[str, Any], command: str) -> str:
    what = f"a random sample of {len(result['sample']['mutants'])} mutants" if "sample" in result else "all mutants"
    lines = [
        f"`{command}` ({what}, {result['seconds'] / 60:.0f} min wall, mutmut {result['mutmut']}):",
        "",
        "| module | mutants | killed | survived | no tests | timeout | kill rate |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = sorted(result["per_module"].items()) + [("**total**", result["total"])]
    for module, c in rows:
        n = sum(c.values())
        lines.append(
            f"| {module.removeprefix('src/')} | {n} | {c.get('killed', 0)} | {c.get('survived', 0)} | "
            f"{c.get('no tests', 0)} | {c.get('timeout', 0)} | {kill_rate(c):.1%} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="where the mutated copy is built")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel (default 2)")
    parser.add_argument("--only", nargs="*", default=[], help="mutant name globs, e.g. 'onnxplain.blackbox.lime*'")
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in --work-dir")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/mutation.json")
    parser.add_argument(
        "--sample", type=int, default=0, help="test a uniform random sample of this many mutants per package"
    )
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of --sample (default 0)")
    parser.add_argument("--replant", action="store_true", help="only re-plant the five issue-22 bugs, one at a time")
    args = parser.parse_args(argv)
    if args.replant:
        results = replant(args.work_dir.resolve())
        for r in results:
            print(f"\n{r['bug']}: {'caught' if r['caught'] else 'NOT CAUGHT'} by\n  " + "\n  ".join(r["failing_tests"]))
        if not args.no_save:
            h.save_results(f"{NAME}_replant", {"command": h.command(argv, module="benchmarks.mutation"), "bugs": results})
        return 0 if all(r["caught"] for r in results) else 1
    try:
        from importlib.metadata import version

        mutmut_version = version("mutmut")
    except Exception:  # noqa: BLE001 - reported as one line below
        print("mutmut is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    work = args.work_dir.resolve()
    build_copy(work, args.fresh)
    names = list(args.only)
    if args.sample:
        generate(work)
        names = sample(work, args.sample, args.sample_seed)
        print(f"testing a sample of {len(names)} mutants ({args.sample} per package, seed {args.sample_seed})")
    status, seconds = run_mutmut(work, args.max_children, names)
    counted = names if args.sample else ()
    result = {"mutmut": mutmut_version, "seconds": seconds, "exit_status": status, **collect(work, counted)}
    if args.sample:
        result["sample"] = {"per_package": args.sample, "seed": args.sample_seed, "mutants": names}
    command = h.command(argv, module="benchmarks.mutation")
    result["command"] = command
    text = markdown(result, command)
    if not args.no_save:
        h.save_results(NAME, result)
    print(text)
    if result["not_killed"]:
        print("\nnot killed:\n  " + "\n  ".join(result["not_killed"]))
    return 0 if status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
