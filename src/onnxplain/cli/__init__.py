"""The ``onnxplain`` command line: demo, explain, compare, evaluate, export, bench.

Exit codes: 0 success, 2 bad input (any :class:`~onnxplain.errors.OnnxplainError` or a bad
option: one line on stderr naming the problem in the CLI's words, the flag that fixes it included:
see :mod:`onnxplain.cli._errors`), 1 internal error (one line; the traceback only
with ``--debug`` or ``ONNXPLAIN_DEBUG=1``), 130 interrupted. Outputs are written atomically, after
everything that can be checked has been checked, so a failed run leaves no partial file.
torch is imported only by the commands that need it.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from onnxplain.cli._errors import cli_message
from onnxplain.errors import OnnxplainError

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = """\
examples:
  onnxplain demo --out demo-report/           shipped MNIST CNN: black-box vs white-box, HTML report
  onnxplain explain model.onnx cat.png --method geex --out maps/
  onnxplain compare --onnx model.onnx --torch resnet18 --weights r18.pt cat.png --out cmp/
  onnxplain evaluate model.onnx --attributions maps/
  onnxplain export --torch resnet18 --weights r18.pt --input-shape 3,224,224 \\
      --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 resnet18.onnx
  onnxplain bench --list

exit codes: 0 ok, 2 bad input (one line on stderr), 1 internal error (--debug shows the traceback)
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (and exit code 2) instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from onnxplain import __version__
    from onnxplain.cli import bench, compare, demo, evaluate, explain, export

    parser = _Parser(
        prog="onnxplain",
        description="Explain ONNX image classifiers from queries alone, and compare the maps with "
        "white-box gradient references computed in PyTorch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"onnxplain {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    demo.add_parser(sub)
    explain.add_parser(sub)
    compare.add_parser(sub)
    evaluate.add_parser(sub)
    export.add_parser(sub)
    bench.add_parser(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script passes it to ``sys.exit``)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("ONNXPLAIN_DEBUG", "") not in ("", "0") or "--debug" in args_list
    try:
        args = build_parser().parse_args(args_list)
        args.argv = args_list
        debug = debug or bool(getattr(args, "debug", False))
        result = args.run(args)
        return result if isinstance(result, int) else EXIT_OK
    except SystemExit as exc:  # argparse (--help, bad options) and commands that exit on purpose
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("onnxplain: interrupted; finished outputs were kept, none is half-written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OnnxplainError as exc:
        if debug:
            traceback.print_exc()
        print(f"onnxplain: error: {cli_message(_one_line(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        if debug:
            traceback.print_exc()
        print("onnxplain: error: out of memory; try a smaller --batch-size.", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(
            f"onnxplain: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with --debug or ONNXPLAIN_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_BAD_INPUT", "EXIT_INTERNAL"]
