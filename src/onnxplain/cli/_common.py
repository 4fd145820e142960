"""What every subcommand shares: options, output checks, labels, methods, progress, printing."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import inspect
import json
import math
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain._io import atomic_write, to_jsonable
from onnxplain.errors import InvalidInputError

# Constructor arguments that hold a black-box method's query budget, in order of preference.
BUDGET_PARAMS = ("n_queries", "queries", "n_samples", "num_samples", "n_masks", "n_perturbations")
# Constructor arguments that hold a white-box method's step count, in order of preference.
STEP_PARAMS = ("n_steps", "steps", "num_steps", "samples", "n_samples", "max_iter", "num_iter")


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


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """How to feed an ONNX model: normalisation, layout, labels."""
    group = parser.add_argument_group("ONNX model input")
    group.add_argument("--mean", type=float_list, help="per-channel mean the model expects, e.g. 0.485,0.456,0.406")
    group.add_argument("--std", type=float_list, help="per-channel std the model expects (with --mean)")
    group.add_argument("--layout", choices=("NCHW", "NHWC"), default="NCHW", help="the graph's input layout")
    group.add_argument("--labels", type=Path, help="class names: a text file with one name per line, or a JSON list")


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


def make_output_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create output directory {str(path)!r}: {exc.strerror or exc}.") from None


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
def _accepts(cls: type, name: str) -> bool:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _first_param(cls: type, names: Sequence[str]) -> str | None:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    return next((n for n in names if n in params), None)


def resolve_method(name: str, *, blackbox: bool | None = None) -> type:
    """The registered class for ``name``; ``blackbox`` restricts the kind (clear error otherwise)."""
    from onnxplain.registry import BLACKBOX, WHITEBOX, get_method, is_blackbox

    key = name.lower()
    if key not in BLACKBOX and key not in WHITEBOX:
        get_method(key)  # raises the registry's "unknown method" error
    if blackbox is True and not is_blackbox(key):
        raise InvalidInputError(
            f"{name!r} is a white-box method (it needs the torch model); use 'onnxplain compare'. "
            f"Black-box methods: {', '.join(BLACKBOX)}."
        )
    if blackbox is False and is_blackbox(key):
        raise InvalidInputError(f"{name!r} is a black-box method; white-box methods: {', '.join(WHITEBOX)}.")
    return get_method(key)


def build_method(
    name: str,
    *,
    blackbox: bool | None = None,
    budget: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Instantiate method ``name`` with its budget (queries or steps), seed and batch size where it takes them."""
    cls = resolve_method(name, blackbox=blackbox)
    kwargs: dict[str, Any] = dict(extra or {})
    if budget is not None:
        key = _first_param(cls, BUDGET_PARAMS if (blackbox or blackbox is None) else STEP_PARAMS)
        if key is None and blackbox is None:
            key = _first_param(cls, STEP_PARAMS)
        if key is None:
            raise InvalidInputError(f"method {name!r} takes no query/step budget.")
        kwargs[key] = int(budget)
    if seed is not None and _accepts(cls, "seed"):
        kwargs["seed"] = int(seed)
    if batch_size is not None and _accepts(cls, "batch_size"):
        kwargs["batch_size"] = int(batch_size)
    kwargs = {k: v for k, v in kwargs.items() if _accepts(cls, k)}
    return cls(**kwargs)


# -- progress -----------------------------------------------------------------------------------
def progress_enabled(quiet: bool) -> bool:
    """Progress bars only on an interactive terminal, never under --quiet."""
    return not quiet and sys.stderr.isatty()


class QueryProgress:
    """A tqdm bar over a model's ``n_queries`` counter, refreshed by a background thread.

    The bar reads the counter the adapter keeps anyway, so the model is not wrapped and explainers
    see exactly the object they were given.
    """

    def __init__(self, model: Any, total: int | None, desc: str, enabled: bool) -> None:
        self.model, self.total, self.desc, self.enabled = model, total, desc, enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None

    def __enter__(self) -> QueryProgress:
        if not self.enabled:
            return self
        from tqdm import tqdm

        self._start = int(getattr(self.model, "n_queries", 0))
        self._bar = tqdm(total=self.total, desc=self.desc, unit="q", leave=False, file=sys.stderr, dynamic_ncols=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._update()

    def _update(self) -> None:
        done = int(getattr(self.model, "n_queries", 0)) - self._start
        if self.total is not None:
            done = min(done, self.total)
        self._bar.n = done
        self._bar.refresh()

    def __exit__(self, *exc: Any) -> None:
        if self._bar is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._bar.close()


@contextlib.contextmanager
def item_progress(total: int, desc: str, enabled: bool) -> Iterator[Any]:
    """A tqdm bar over images × methods (or a no-op object with ``update``)."""
    if not enabled:

        class _Null:
            def update(self, n: int = 1) -> None:
                pass

            def set_postfix_str(self, s: str) -> None:
                pass

        yield _Null()
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


# -- output -------------------------------------------------------------------------------------
def write_json(path: Path, data: Any) -> None:
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False)
    with atomic_write(path, "w") as handle:
        handle.write(text + "\n")


def write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


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
    """Where messages go: human text to stdout (unless --quiet/--json), notes to stderr, JSON to stdout."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.quiet = bool(getattr(args, "quiet", False))
        self.json = bool(getattr(args, "json", False))
        self.progress = progress_enabled(self.quiet)

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
