"""Small I/O helpers: atomic writes (an interrupted run never leaves a corrupt file) and JSON values."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from onnxplain.errors import InvalidInputError


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays become numbers/lists, tuples lists, paths strings,
    and non-finite floats ``None`` (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_output_path(path: Any, what: str = "output path") -> Path:
    """``path`` as a Path a file can be written to, checked before any work: refused when it is
    not a str/PathLike, is an existing directory, or lies below an existing file."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"the {what} must be a str or os.PathLike, not {type(path).__name__}.")
    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(f"the {what} {str(target)!r} is an existing directory.")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidInputError(f"cannot write {str(target)!r}: {str(parent)!r} is not a directory.")
            break
    return target
