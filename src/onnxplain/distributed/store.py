"""The output directory of a dataset run: one ``.npz`` and one JSON row per image, written atomically.

Layout of ``out/``::

    run.json          what was run (model identity, method and params, seed): resuming checks it
    maps/<id>.npz     the Explanation (Explanation.save, atomic)
    rows/<id>.json    the image's row, written atomically *after* its .npz: the commit marker
    results.jsonl     every row of the last run's images, sorted by id (rebuilt at the end of a run)

An image is *finished* when its row exists with ``"status": "ok"``. A run killed at any instant
leaves only finished images and at most some orphaned temporary files; a resumed run skips the
finished ones and retries the rest (images whose row records an error are retried too).
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

    def map_path(self, image_id: str) -> Path:
        return self.maps / f"{_file_stem(image_id)}.npz"

    def row_path(self, image_id: str) -> Path:
        return self.rows / f"{_file_stem(image_id)}.json"

    def prepare(self, config: dict[str, Any], *, resume: bool) -> None:
        """Create the directory; with ``resume``, refuse one holding a different configuration."""
        self.maps.mkdir(parents=True, exist_ok=True)
        self.rows.mkdir(parents=True, exist_ok=True)
        config = json.loads(json.dumps({"format": _FORMAT, **config}, default=str))
        run_file = self.root / "run.json"
        if resume and run_file.exists():
            try:
                previous = json.loads(run_file.read_text())
            except ValueError:
                previous = None
            if previous != config:
                raise InvalidInputError(
                    f"{self.root} holds results of a different model, method, params or seed; "
                    "choose another output directory or pass resume=False to overwrite."
                )
            return
        with atomic_write(run_file, "w") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)

    def read_row(self, image_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.row_path(image_id).read_text())
        except (OSError, ValueError):
            return None

    def is_finished(self, image_id: str) -> bool:
        row = self.read_row(image_id)
        return row is not None and row.get("status") == "ok" and self.map_path(image_id).is_file()

    def finished(self, ids: Iterable[str]) -> set[str]:
        """The ids among ``ids`` with a finished result (one directory listing, then a row read each)."""
        try:
            present = {p.name for p in self.rows.iterdir()}
        except FileNotFoundError:
            return set()
        return {i for i in ids if f"{_file_stem(i)}.json" in present and self.is_finished(i)}

    def write_row(self, row: dict[str, Any]) -> None:
        with atomic_write(self.row_path(row["id"]), "w") as handle:
            json.dump(row, handle, sort_keys=True)

    def gather(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Rows of ``ids`` (missing ones skipped), sorted by id, also written to ``results.jsonl``."""
        rows = [r for r in (self.read_row(i) for i in sorted(set(ids))) if r is not None]
        with atomic_write(self.root / "results.jsonl", "w") as handle:
            for row in rows:
                handle.write(json.dumps(row, sort_keys=True) + "\n")
        return rows
