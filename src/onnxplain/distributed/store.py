"""The output directory of a dataset run: one ``.npz`` and one JSON row per image, written atomically.

Layout of ``out/``::

    run.json          what was run (model identity, method and params, seed): resuming checks it
    maps/<id>.npz     the Explanation (Explanation.save, atomic)
    rows/<id>.json    the image's row, written atomically *after* its .npz: the commit marker
    results.jsonl     every row of the last run's images, sorted by id (rebuilt at the end of a run)

An image is *finished* when its row exists with ``"status": "ok"``, was made with this run's
configuration (its ``settings_key``) and its ``.npz`` exists: the rule of the package's one result
cache, :class:`~onnxplain.pipeline.cache.ResultCache`, with one row file per image
(:class:`~onnxplain.pipeline.cache.RowIndex`) so that Ray actors never share a file. A run killed
at any instant leaves only finished images and at most some orphaned temporary files; a resumed
run skips the finished ones and retries the rest (images whose row records an error are retried
too).
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from onnxplain._io import atomic_write
from onnxplain.errors import InvalidInputError
from onnxplain.pipeline.cache import ResultCache, RowIndex, read_json, settings_key

__all__ = ["ResultStore", "check_id"]

_FORMAT = 1
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.\-]+$")


def check_id(image_id: Any) -> str:
    """Image ids become file names: non-empty strings, not ``.``/``..``."""
    text = str(image_id)
    if not text or text in (".", "..") or "\x00" in text:
        raise InvalidInputError(f"image id {text!r} is not usable as a file name.")
    return text


def _file_stem(image_id: str) -> str:
    # readable for ordinary ids, escaped (reversibly) for the rest
    if _SAFE_ID.match(image_id) and not image_id.startswith("."):
        return image_id
    return urllib.parse.quote(image_id, safe="-_").replace(".", "%2E")


class ResultStore:
    """Reads and writes one run directory (see the module docstring for the layout)."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.root = Path(out)
        self.maps = self.root / "maps"
        self.rows = self.root / "rows"
        self.index = RowIndex(self.rows, _file_stem)
        self.cache = ResultCache(self.root, self.index)

    def map_path(self, image_id: str) -> Path:
        return self.maps / f"{_file_stem(image_id)}.npz"

    def row_path(self, image_id: str) -> Path:
        return self.index.path(image_id)

    @property
    def key(self) -> str | None:
        """The settings key of the run configuration in ``run.json`` (None before :meth:`prepare`)."""
        config = read_json(self.root / "run.json")
        return settings_key(config) if isinstance(config, dict) else None

    @staticmethod
    def _normalised(config: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps({"format": _FORMAT, **config}, default=str))

    def holds(self, config: dict[str, Any]) -> bool:
        """Whether ``run.json`` records ``config`` (a resumed run with it is accepted)."""
        return read_json(self.root / "run.json") == self._normalised(config)

    def prepare(self, config: dict[str, Any], *, resume: bool) -> None:
        """Create the directory; with ``resume``, refuse one holding a different configuration."""
        self.maps.mkdir(parents=True, exist_ok=True)
        self.rows.mkdir(parents=True, exist_ok=True)
        config = self._normalised(config)
        run_file = self.root / "run.json"
        if resume and run_file.exists():
            if read_json(run_file) != config:
                raise InvalidInputError(
                    f"{self.root} holds results of a different model, method, params or seed; "
                    "choose another output directory or pass resume=False to overwrite."
                )
            return
        with atomic_write(run_file, "w") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)

    def read_row(self, image_id: str) -> dict[str, Any] | None:
        return self.index.get(image_id, None)

    def is_finished(self, image_id: str) -> bool:
        return self.cache.lookup(image_id, None, self.key) is not None

    def finished(self, ids: Iterable[str]) -> set[str]:
        """The ids among ``ids`` with a finished result (one directory listing, then a row read each)."""
        try:
            present = {p.name for p in self.rows.iterdir()}
        except FileNotFoundError:
            return set()
        key = self.key
        return {
            i for i in ids if f"{_file_stem(i)}.json" in present and self.cache.lookup(i, None, key) is not None
        }

    def write_row(self, row: dict[str, Any]) -> None:
        """Commit an image's row (after its npz): a finished row names its file and the run's settings key."""
        if row.get("status") == "ok" and "file" in row:
            row = {**row, "files": {"npz": row["file"]}, "settings_key": self.key}
        self.cache.commit(row)

    def gather(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Rows of ``ids`` (missing ones skipped), sorted by id, also written to ``results.jsonl``."""
        rows = [r for r in (self.read_row(i) for i in sorted(set(ids))) if r is not None]
        with atomic_write(self.root / "results.jsonl", "w") as handle:
            for row in rows:
                handle.write(json.dumps(row, sort_keys=True) + "\n")
        return rows
