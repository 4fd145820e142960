"""The CLI's parser, the report and image loading import without torch (torch loads only in commands that need it)."""

from __future__ import annotations

import subprocess
import sys


def test_cli_and_report_do_not_import_torch():
    code = (
        "import sys\n"
        "from onnxplain.cli import build_parser\n"
        "build_parser().parse_args(['explain', 'm.onnx', 'x.png', '-m', 'geex', '--out', 'o'])\n"
        "import onnxplain.report, onnxplain.report.html, onnxplain.images\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
