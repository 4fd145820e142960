"""Where the benchmarks keep their files, and the environment variables the suite runner sets."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
README = BENCH_DIR / "README.md"
RESULTS_DIR = BENCH_DIR / "results"
CACHE_DIR = Path(os.environ.get("ONNXPLAIN_BENCH_CACHE", Path(tempfile.gettempdir()) / "onnxplain-bench"))

# Set by ``python -m benchmarks`` for the scripts it runs, so each section names the command that
# regenerated it.
COMMAND_ENV = "ONNXPLAIN_BENCH_COMMAND"
NO_README_ENV = "ONNXPLAIN_BENCH_NO_README"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
