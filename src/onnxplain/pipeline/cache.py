"""The one result cache: finished maps are reused when they were made with the same settings.

Used by ``onnxplain explain``, ``onnxplain compare``/``demo`` and the dataset runner
(:class:`~onnxplain.distributed.store.ResultStore`). A result is a *record*, a JSON-ready dict with

- ``id`` and ``method``: what it is the result of (an image id, a registry method name);
- ``settings_key``: :func:`settings_key` of everything that determines the result (model
  identity, method parameters and seed, the explicand, the target);
- ``files``: the files that hold it, relative to the cache's root;
- optionally ``status`` (``"ok"``, or ``"error"`` for a failed item that is to be retried).

Writing order makes the record the commit marker: the files are written atomically first, then
the record; a run killed at any instant leaves complete results and at most orphaned temporary
files. A record is reused (:meth:`ResultCache.lookup`) only if the cache is not forced, its
status is ok, its settings key is the one asked for and every file it names exists.

Where records live is the cache's *index*: :class:`JsonIndex` keeps them in one JSON document
rewritten after every commit (a single writer: the CLI's ``results.json``), :class:`RowIndex` keeps
one file per id (several writers at once: Ray actors).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from onnxplain._io import atomic_write, to_jsonable
from onnxplain.errors import InvalidInputError

Record = dict[str, Any]


def settings_key(fields: Mapping[str, Any]) -> str:
    """A 16-hex-digit digest of ``fields`` (JSON with sorted keys; arrays as lists)."""
    blob = json.dumps(to_jsonable(dict(fields)), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def array_digest(array: np.ndarray) -> str:
    """Digest of an explicand's values, dtype and shape (part of a settings key)."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha1(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def read_json(path: Path) -> Any:
    """The JSON value in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def write_json(path: Path, data: Any, *, indent: int | None = 2) -> None:
    """Strict JSON (no NaN), written atomically."""
    text = json.dumps(to_jsonable(data), indent=indent, allow_nan=False, sort_keys=indent is None)
    with atomic_write(path, "w") as handle:
        handle.write(text + "\n")


def make_dir(path: Path) -> Path:
    """Create an output directory (and its parents); an OS refusal is bad input, in one sentence."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create output directory {str(path)!r}: {exc.strerror or exc}.") from None
    return Path(path)


def write_npy(path: Path, array: np.ndarray) -> None:
    """An ``.npy`` file, written atomically."""
    with atomic_write(path) as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)


class Index(Protocol):
    """Where a cache keeps its records."""

    def get(self, item: str, method: str | None) -> Record | None: ...

    def put(self, record: Record) -> None: ...

    def keep(self, record: Record) -> None: ...


class JsonIndex:
    """Records in one JSON document, rewritten atomically after every :meth:`put`.

    ``records_of(document)`` lists the records of a previous document (called once, on the
    value read from ``path``; None when there is none); ``document(current, previous)`` builds
    the document to write from this run's records and the earlier ones not redone.
    """

    def __init__(
        self,
        path: Path,
        records_of: Callable[[Any], list[Record]],
        document: Callable[[list[Record], list[Record]], Any],
    ) -> None:
        self.path = Path(path)
        self._document = document
        self.previous: dict[tuple[str, str], Record] = {}
        for rec in records_of(read_json(self.path)):
            if isinstance(rec, dict) and {"id", "method", "settings_key", "files"} <= rec.keys():
                self.previous[(str(rec["id"]), str(rec["method"]))] = rec
        self.current: dict[tuple[str, str], Record] = {}

    def get(self, item: str, method: str | None) -> Record | None:
        return self.current.get((item, method)) or self.previous.get((item, method))

    def put(self, record: Record) -> None:
        self.current[(str(record["id"]), str(record["method"]))] = record
        self.save()

    def keep(self, record: Record) -> None:
        """List a reused result among this run's (written with the next :meth:`put` or :meth:`save`)."""
        self.current[(str(record["id"]), str(record["method"]))] = record

    def document(self) -> Any:
        earlier = [rec for key, rec in self.previous.items() if key not in self.current]
        return self._document(list(self.current.values()), earlier)

    def save(self) -> None:
        write_json(self.path, self.document())


class RowIndex:
    """One JSON row per id in ``rows/`` (its file name from ``file_stem(id)``): each writer owns its files."""

    def __init__(self, rows: Path, file_stem: Callable[[str], str]) -> None:
        self.rows = Path(rows)
        self.file_stem = file_stem

    def path(self, item: str) -> Path:
        return self.rows / f"{self.file_stem(item)}.json"

    def get(self, item: str, method: str | None) -> Record | None:
        """The row of ``item`` (of ``method``, unless None)."""
        row = read_json(self.path(item))
        if not isinstance(row, dict) or (method is not None and row.get("method") != method):
            return None
        return row

    def put(self, record: Record) -> None:
        write_json(self.path(str(record["id"])), record, indent=None)

    def keep(self, record: Record) -> None:
        """A reused row stays where it is."""


class ResultCache:
    """Reuse or commit results under ``root`` (see the module docstring for the rules)."""

    def __init__(self, root: Path, index: Index, *, force: bool = False) -> None:
        self.root = Path(root)
        self.index = index
        self.force = force

    def lookup(self, item: str, method: str | None, key: str | None) -> Record | None:
        """The finished record of ``(item, method)`` made with ``key``, else None (``method=None``:
        an index holding one method; ``key=None``: any settings)."""
        if self.force:
            return None
        rec = self.index.get(item, method)
        if rec is None or rec.get("status", "ok") != "ok":
            return None
        if key is not None and rec.get("settings_key") != key:
            return None
        files = rec.get("files")
        if not isinstance(files, dict) or not all((self.root / str(f)).is_file() for f in files.values()):
            return None
        return rec

    def reuse(self, record: Record) -> None:
        """Count a looked-up record as part of this run."""
        self.index.keep(record)

    def commit(self, record: Record) -> None:
        """Record a result whose files are already written (the record is the commit marker)."""
        self.index.put(record)
