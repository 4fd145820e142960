"""How the pipeline tells its caller what it is doing, without printing anything itself.

The pipeline calls :meth:`Progress.start` once per stage, wraps every (image, method) it computes
in :meth:`Progress.item` and reports each finished one with :meth:`Progress.finished`. This base
class does nothing; the CLI's subclasses draw bars on a terminal or print one line per item.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class Progress:
    """Silent progress: the default of every pipeline function."""

    def start(self, total: int, label: str, *, to_compute: int | None = None) -> None:
        """A stage of ``total`` (image, method) items begins (``label``: e.g. "maps"), of which
        ``to_compute`` will be computed (the others are reused)."""

    @contextlib.contextmanager
    def item(self, image: str, method: str, *, queries: int | None, model: Any) -> Iterator[None]:
        """Around the computation of one item: ``queries`` it will cost (None: unknown), and the
        model whose ``n_queries`` counter follows it."""
        yield

    def finished(self, image: str, method: str, *, seconds: float, reused: bool) -> None:
        """One item is done: computed in ``seconds``, or ``reused`` from an earlier run."""

    def close(self) -> None:
        """The stage is over (also after an error)."""
