"""The work directory: one small map and one JSON record per (model, photo, method, budget, seed).

Layout: ``<work>/<model>/<photo>/<method>-b<budget>-s<seed>.npz`` holds the signed channel-mean
map (H, W) float32 (every metric ranks on it); the ``.json`` next to it holds

* ``config``: ``method``, the method's class and hyper-parameters, and ``subject``, the digests of
  the model file and the photo and the explained class (a map is reused only when both are
  equal, so a changed default or a rebuilt cache recomputes instead of silently mixing versions),
* ``info``: wall seconds, forwards, backward passes, target, f_t(x) of the explanation,
* ``metrics`` (once computed): the curve metrics under ``protocol`` (recomputed when the
  protocol changes) and the agreement with the reference under ``reference`` (the digest of the
  reference map it was measured against; recomputed when that map changes).

Every file is written to a temporary name and renamed, so an interrupted run leaves either the old
file or the new one; the map is written before its record, so a record always has its map.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain._io import atomic_write, to_jsonable


def _label(value: int | None) -> str:
    return "na" if value is None else str(int(value))


def digest(array: np.ndarray) -> str:
    """A short content digest of a map (to know which reference an agreement was measured against)."""
    a = np.ascontiguousarray(array, dtype=np.float32)
    return hashlib.sha1(a.tobytes() + str(a.shape).encode()).hexdigest()[:16]


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_write(path) as handle:
        handle.write(data)


@dataclass(frozen=True)
class Item:
    """One explanation to have: model, photo, method key, budget (None: no budget), seed (None: unseeded)."""

    model: str
    photo: str
    method: str
    budget: int | None
    seed: int | None

    @property
    def stem(self) -> str:
        method = re.sub(r"[^A-Za-z0-9_.=+-]", "_", self.method)  # variants: geex[baseline=blur]
        return f"{method}-b{_label(self.budget)}-s{_label(self.seed)}"


class WorkDir:
    """Read and write the cached maps and records of one run directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _base(self, item: Item) -> Path:
        return self.root / item.model / item.photo / item.stem

    def record(self, item: Item) -> dict[str, Any] | None:
        path = self._base(item).with_suffix(".json")
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def has_map(self, item: Item, method: dict[str, Any], subject: dict[str, Any] | None = None) -> bool:
        """Whether a map made with exactly this method configuration is stored (and, unless
        ``subject`` is None, for exactly this model file, photo and target)."""
        rec = self.record(item)
        if not rec or not self._base(item).with_suffix(".npz").is_file():
            return False
        config = rec.get("config") or {}
        if config.get("method") != _normal(method):
            return False
        return subject is None or config.get("subject") == _normal(subject)

    def load_map(self, item: Item) -> np.ndarray:
        with np.load(self._base(item).with_suffix(".npz")) as data:
            return np.asarray(data["map"], dtype=np.float32)

    def save_map(
        self,
        item: Item,
        saliency: np.ndarray,
        method: dict[str, Any],
        subject: dict[str, Any],
        info: dict[str, Any],
    ) -> None:
        """Store a new map and its record (any earlier metrics are dropped: they were for another map)."""
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, map=np.asarray(saliency, dtype=np.float32))
        _atomic_write(self._base(item).with_suffix(".npz"), buffer.getvalue())
        config = {"method": method, "subject": subject}
        self._write(item, {"config": _normal(config), "info": _normal(info)})

    def stale(self, item: Item, protocol: dict[str, Any], reference: str | None) -> tuple[bool, bool]:
        """(curve metrics missing or of another protocol, agreement missing or against another
        reference map); ``reference=None`` means there is no reference map to agree with."""
        m = (self.record(item) or {}).get("metrics") or {}
        curves = m.get("protocol") != _normal(protocol)
        agreement = reference is not None and m.get("reference") != reference
        return curves, agreement

    def save_metrics(self, item: Item, metrics: dict[str, Any]) -> None:
        """Merge ``metrics`` into the item's stored metrics (curve part and agreement part apart)."""
        rec = self.record(item)
        if rec is None:
            raise FileNotFoundError(f"no record for {item}; save its map first.")
        rec["metrics"] = {**(rec.get("metrics") or {}), **_normal(metrics)}
        self._write(item, rec)

    def _write(self, item: Item, record: dict[str, Any]) -> None:
        _atomic_write(self._base(item).with_suffix(".json"), (json.dumps(record, indent=1) + "\n").encode())


def _normal(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples → lists, numpy scalars → Python), for comparisons."""
    return json.loads(json.dumps(to_jsonable(obj)))
