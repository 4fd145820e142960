"""``python -m benchmarks.harness``: the machine, a model's best per-sample time, or a memory child."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.harness.limits import best_per_sample_time
from benchmarks.harness.memory import _child
from benchmarks.harness.reporting import machine_markdown
from benchmarks.harness.zoo import _MODELS, input_shape_of, onnx_model_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark harness helpers")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--machine", action="store_true", help="print the machine description")
    parser.add_argument(
        "--best-time", metavar="MODEL", help="best per-sample time of a benchmark model or .onnx path"
    )
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    if args.machine:
        print(machine_markdown())
    if args.best_time:
        name = args.best_time
        path = onnx_model_path(name) if name in ("demo", *_MODELS) else Path(name)
        shape = input_shape_of(name) if name in ("demo", *_MODELS) else None
        best = best_per_sample_time(path, shape)
        print(json.dumps(best.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
