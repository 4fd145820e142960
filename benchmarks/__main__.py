"""Run the benchmark suite: ``python -m benchmarks [name ...]`` (all of them when none is named).

Each benchmark is a module ``benchmarks/<name>.py`` run as ``python -m benchmarks.<name>`` in its
own process (so one script's memory or threads never affect another's numbers). Scripts update
their own generated block of ``benchmarks/README.md``; this runner then rewrites the ``machine``
block: the machine, the load, and each script's command, wall time and exit status.

Suite-wide options (``--geex-reference``, ``--rise-reference``, ``--mnist``, ``--device``) are passed only to
the scripts whose ``--help`` lists them; a script that *requires* one that was not given is
skipped with a note.

    python -m benchmarks --list
    python -m benchmarks
    python -m benchmarks peers_lime geex_scaling --geex-reference /tmp/geex-ref
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks import harness as h

NOT_BENCHMARKS = {"__init__", "__main__", "harness", "conftest", "real_assets"}
# Suite option → the flag scripts use for it.
SHARED_OPTIONS = ("--geex-reference", "--rise-reference", "--mnist", "--device")


def benchmark_names(directory: Path = h.BENCH_DIR) -> list[str]:
    """Modules of ``benchmarks/`` that are benchmarks (not the harness, not private helpers)."""
    return sorted(
        p.stem for p in directory.glob("*.py") if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_")
    )


def script_flags(name: str) -> tuple[set[str], set[str]]:
    """(flags the script accepts, flags it requires), read from its ``--help`` usage."""
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"],
        cwd=h.ROOT,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    text = proc.stdout
    accepted = set(re.findall(r"(--[a-z0-9][a-z0-9-]*)", text))
    usage = text.split("\n\n", 1)[0]
    optional = set(re.findall(r"\[(--[a-z0-9][a-z0-9-]*)", usage))
    required = {f for f in re.findall(r"(--[a-z0-9][a-z0-9-]*)", usage) if f not in optional}
    return accepted, required


def _env(command: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(h.ROOT), env.get("PYTHONPATH")]))
    if command:
        env[h.COMMAND_ENV] = command
    return env


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run all benchmarks, or the named ones, and regenerate benchmarks/README.md.",
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmark names and exit")
    parser.add_argument("--geex-reference", type=Path, help="local clone of github.com/caiy0220/GEEX")
    parser.add_argument("--rise-reference", type=Path, help="local clone of github.com/eclique/RISE")
    parser.add_argument("--mnist", type=Path, help="mnist_test.npz for the scripts that take it")
    parser.add_argument("--device", help="cpu | cuda | cuda:<i>, for the scripts that take it (their default: cpu)")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite benchmarks/README.md")
    parser.add_argument("--timeout", type=float, default=1800, help="per-script limit in seconds (default 1800)")
    args = parser.parse_args(argv)

    available = benchmark_names()
    if args.list:
        print("\n".join(available))
        return 0
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")
    selected = args.names or available
    given = {
        "--geex-reference": args.geex_reference,
        "--rise-reference": args.rise_reference,
        "--mnist": args.mnist,
        "--device": args.device,
    }
    top = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    top = top.strip()
    if args.no_readme:
        os.environ[h.NO_README_ENV] = "1"

    started = time.perf_counter()
    load_start = h.load_average()
    rows = []
    failed = 0
    for name in selected:
        accepted, required = script_flags(name)
        extra: list[str] = []
        missing = []
        for flag in SHARED_OPTIONS:
            value = given[flag]
            if flag in accepted and value is not None:
                extra += [flag, str(value)]
            elif flag in required:
                missing.append(flag)
        cmd = [sys.executable, "-m", f"benchmarks.{name}", *extra]
        shown = "python -m " + " ".join([f"benchmarks.{name}", *map(shlex.quote, extra)])
        if missing:
            print(f"== {name}: skipped (needs {', '.join(missing)})", flush=True)
            rows.append([f"`{name}`", "skipped", f"needs {', '.join(missing)}", "—", "—"])
            continue
        print(f"== {shown}", flush=True)
        load = h.load_average()
        t0 = time.perf_counter()
        try:
            code = subprocess.call(cmd, cwd=h.ROOT, env=_env(top), timeout=args.timeout)
        except subprocess.TimeoutExpired:
            code = "timeout"
        seconds = time.perf_counter() - t0
        ok = code == 0
        failed += not ok
        print(f"== {name}: {'ok' if ok else f'FAILED ({code})'} in {seconds:.0f} s", flush=True)
        rows.append(
            [f"`{name}`", "ok" if ok else f"failed ({code})", f"`{shown}`", f"{seconds:.0f} s", f"{load[0]:.2f}" if load else "?"]
        )
    total = time.perf_counter() - started
    summary = "\n\n".join(
        [
            h.machine_markdown(),
            f"Last full command: `{top}` — {len(selected)} script(s), total **{total / 60:.1f} min**, "
            f"{h.load_line(load_start, h.load_average())} "
            f"(other work was running on this shared machine; compare ratios, not absolute times). "
            f"Finished {time.strftime('%Y-%m-%d %H:%M %Z')}.",
            h.md_table(["benchmark", "status", "command", "wall time", "load at start"], rows),
        ]
    )
    if args.names and set(args.names) != set(available):
        summary += "\n\n(Only the named scripts were run; the other blocks keep their previous results.)"
    h.write_section("machine", summary)
    print(f"suite finished in {total / 60:.1f} min; {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
