"""What every subcommand shares: options, output checks, labels, methods, printing."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain._io import to_jsonable
from onnxplain.cli._progress import make_progress, progress_mode
from onnxplain.errors import InvalidInputError
from onnxplain.pipeline.progress import Progress


# -- option parsing ------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {value}")
    return value


def float_list(text: str) -> tuple[float, ...]:
    """``"0.5,0.5,0.5"`` or ``"0.5 0.5 0.5"`` → floats."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers, got {text!r}")
    return values


def shape_arg(text: str) -> tuple[int, ...]:
    parts = [p for p in text.replace("x", ",").replace(" ", ",").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 3,224,224, got {text!r}") from None
    if len(shape) != 3 or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"expected a (C,H,W) shape of positive sizes, got {text!r}")
    return shape


def method_list(values: Sequence[str] | None) -> list[str]:
    """``--method geex --method rise`` or ``--method geex,rise`` → ``["geex", "rise"]`` (order kept)."""
    out: list[str] = []
    for value in values or []:
        for name in value.split(","):
            name = name.strip().lower()
            if name and name not in out:
                out.append(name)
    return out


def add_common(parser: argparse.ArgumentParser, *, device: bool = True, batch: bool = True, seed: bool = True) -> None:
    """``--quiet --json --debug`` and, where they apply, ``--seed --device --batch-size --force``."""
    group = parser.add_argument_group("common options")
    group.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors; no progress bars")
    group.add_argument("--json", action="store_true", help="print a machine-readable summary (JSON) on stdout")
    group.add_argument("--debug", action="store_true", help="show the full traceback on errors (or ONNXPLAIN_DEBUG=1)")
    if seed:
        group.add_argument("--seed", type=non_negative_int, default=0, help="seed of every random choice (default 0)")
    if device:
        group.add_argument(
            "--device", default="auto", help="auto (CUDA when usable), cpu, cuda or cuda:<i> (default auto)"
        )
    if batch:
        group.add_argument(
            "--batch-size", type=positive_int, default=None, help="samples per model call (default: measured)"
        )


def add_model_options(parser: argparse.ArgumentParser, *, num_classes: bool = True) -> None:
    """How to feed an ONNX (or KServe-v2) model: normalisation, layout, shape, tensors, labels."""
    group = parser.add_argument_group("ONNX model input")
    group.add_argument("--mean", type=float_list, help="per-channel mean the model expects, e.g. 0.485,0.456,0.406")
    group.add_argument("--std", type=float_list, help="per-channel std the model expects (with --mean)")
    group.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW", help="the graph's input layout")
    group.add_argument("--input-shape", type=shape_arg, default=None, help="C,H,W when the model leaves it dynamic")
    group.add_argument("--labels", type=Path, help="class names: a text file with one name per line, or a JSON list")
    group.add_argument("--channel-order", choices=("RGB", "BGR"), default="RGB",
                       help="the model's channel order (OpenCV/Caffe-style models take BGR; images stay RGB)")
    group.add_argument("--head", choices=("auto", "softmax", "logsoftmax", "sigmoid", "logits"), default="auto",
                       help="what the ONNX model's output is (auto: read from the graph)")
    group.add_argument("--ends-in-softmax", choices=("auto", "yes", "no"), default="auto",
                       help="whether a URL model answers with probabilities (auto: decided from its first answer)")
    group.add_argument("--input-name", default=None, help="a URL model's input tensor, when it has several")
    group.add_argument("--output-name", default=None, help="a URL model's output tensor, when it has several")
    if num_classes:
        group.add_argument("--num-classes", type=positive_int, default=None,
                           help="a URL model's class count, when its output shape does not say")
        parser.set_defaults(num_classes_of_model=True)


# -- checks before anything is written -----------------------------------------------------------
def check_output_dir(path: Path) -> Path:
    """Make sure ``path`` is (or can become) a writable directory, without creating anything."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise InvalidInputError(f"output directory {str(path)!r} exists and is not a directory.")
        probe_dir = path
    else:
        probe_dir = path.parent
        while not probe_dir.exists():
            if probe_dir == probe_dir.parent:
                break
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise InvalidInputError(f"cannot create output directory {str(path)!r}: {str(probe_dir)!r} is a file.")
    try:
        with tempfile.TemporaryFile(dir=probe_dir):
            pass
    except OSError as exc:
        raise InvalidInputError(
            f"output directory {str(path)!r} is not writable ({exc.strerror or type(exc).__name__} in {str(probe_dir)!r})."
        ) from None
    return path


def check_files_exist(paths: Sequence[Path], what: str) -> None:
    for p in paths:
        if not Path(p).exists():
            raise InvalidInputError(f"{what} {str(p)!r} does not exist.")
        if not Path(p).is_file():
            raise InvalidInputError(f"{what} {str(p)!r} is not a file.")


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems used to name outputs; two inputs with one stem would overwrite each other's files."""
    stems = [Path(p).stem for p in paths]
    seen: dict[str, Path] = {}
    for stem, p in zip(stems, paths, strict=True):
        if stem in seen:
            raise InvalidInputError(
                f"images {str(seen[stem])!r} and {str(p)!r} share the name {stem!r}; their outputs would collide."
            )
        seen[stem] = Path(p)
    return stems


def load_labels(path: Path | None, num_classes: int, fallback: Sequence[str] | None = None) -> list[str]:
    """Class names from a text/JSON file (must have exactly ``num_classes`` entries), else ``fallback``, else indices."""
    if path is None:
        if fallback is not None and len(fallback) == num_classes:
            return [str(v) for v in fallback]
        return [str(i) for i in range(num_classes)]
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"labels file {str(path)!r} does not exist.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"labels file {str(path)!r} cannot be read as UTF-8 text ({exc}).") from None
    labels: list[str]
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"labels file {str(path)!r} is not valid JSON ({exc.msg}).") from None
        if isinstance(data, dict):
            try:
                data = [data[k] for k in sorted(data, key=int)]
            except (ValueError, TypeError):
                raise InvalidInputError(f"labels file {str(path)!r}: a JSON object needs class-index keys.") from None
        if not isinstance(data, list):
            raise InvalidInputError(f"labels file {str(path)!r} must hold a JSON list of names.")
        labels = [v if isinstance(v, str) else (v[-1] if isinstance(v, list) and v else str(v)) for v in data]
    else:
        labels = [line.strip() for line in text.splitlines()]
        while labels and not labels[-1]:
            labels.pop()
    if len(labels) != num_classes:
        raise InvalidInputError(
            f"labels file {str(path)!r} has {len(labels)} names but the model has {num_classes} classes."
        )
    return [str(v) for v in labels]


def normalize_from(mean: Sequence[float] | None, std: Sequence[float] | None) -> Any:
    from onnxplain.models.base import Normalize

    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise InvalidInputError("--mean and --std must be given together.")
    return Normalize(tuple(mean), tuple(std))


# -- methods ------------------------------------------------------------------------------------
def method_names(values: Sequence[str] | None, kind: str) -> list[str]:
    """``--method geex,rise`` → checked registry names of ``kind`` ("black-box"/"white-box")."""
    from onnxplain.registry import check_kind

    names = method_list(values)
    for name in names:
        check_kind(name, kind)  # type: ignore[arg-type]
    return names


def baseline_spec(text: str | None) -> Any:
    """``--baseline``: ``zero``, ``blur``, ``blur(k,σ)``, a number, or a ``.npy`` file; checked now."""
    from onnxplain.baselines import Baseline

    if text is None:
        return None
    spec: Any = text
    try:
        spec = float(text)
    except ValueError:
        if text.lower().endswith(".npy"):
            path = Path(text)
            if not path.is_file():
                raise InvalidInputError(f"baseline file {text!r} does not exist.") from None
            try:
                spec = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise InvalidInputError(f"baseline file {text!r} is not a readable .npy array ({exc}).") from None
    Baseline.parse(spec)
    return spec


# -- output -------------------------------------------------------------------------------------
def note_unused(con: Console, runs: Sequence[Any], *, baseline: Any, queries: Any = None, steps: Any = None) -> None:
    """Say which methods ignore --baseline, --queries or --steps (an option is never dropped silently)."""
    checks = (("--baseline", baseline, lambda e: e.uses_baseline), ("--queries", queries, lambda e: e.budget_param),
              ("--steps", steps, lambda e: e.budget_param))
    for flag, value, uses in checks:
        kind = "white-box" if flag == "--steps" else ("black-box" if flag == "--queries" else None)
        ignored = [r.name for r in runs if value is not None and kind in (None, r.kind) and not uses(r.explainer)]
        if ignored:
            con.note(f"onnxplain: note: {', '.join(ignored)} take(s) no {flag}; it applies to the other methods.")


def baseline_text(spec: Any) -> str:
    """How a ``--baseline`` is listed in settings: ``"method default"``, the spec, or ``"array(C, H, W)"``."""
    if spec is None:
        return "method default"
    if isinstance(spec, np.ndarray):
        return "array(" + ", ".join(map(str, spec.shape)) + ")"
    return str(spec)


def file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in text:
        lines.append("  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


class Console:
    """Where messages go: human text to stdout (unless --quiet/--json), notes to stderr, JSON to
    stdout; progress as bars on a terminal, else as lines (see :mod:`onnxplain.cli._progress`)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quiet = bool(getattr(args, "quiet", False))
        self.json = bool(getattr(args, "json", False))
        self.progress_mode = progress_mode(self.quiet, self.json)

    def progress(self) -> Progress:
        """A fresh progress display for one stage of work."""
        return make_progress(self.progress_mode, self.say)

    def say(self, text: str = "") -> None:
        if not self.quiet and not self.json:
            print(text, flush=True)

    def note(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def emit_json(self, data: Any) -> None:
        if self.json:
            print(json.dumps(to_jsonable(data), indent=2, allow_nan=False), flush=True)


def relpath(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)
