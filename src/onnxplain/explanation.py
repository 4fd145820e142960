"""The one result type every explainer returns, black-box or white-box."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from onnxplain._io import atomic_write, check_output_path, to_jsonable
from onnxplain.errors import InvalidInputError

Reduce = Literal["mean", "sum", "abs"]

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Explanation:
    """Attributions of one explicand (C,H,W) or a batch (B,C,H,W), with how they were made.

    Attributes:
        attributions: array of the explicand's shape (a batch keeps its leading axis).
        method: registry name of the method (``"geex"``, ``"ig"``, ...).
        target: explained class, an int for one explicand or an int array of length B.
        score: f(x) for the target (float, or array of length B).
        baseline_score: f(x̂) for path methods with a baseline, else ``None``.
        params: every hyper-parameter actually used, the seed included.
        n_queries: forward passes of the model (samples, not calls).
        n_backward: backward passes (white-box methods only).
        seconds: wall time of the whole explanation.
        model_seconds: time spent inside the model runtime.
        diagnostics: method-specific figures (e.g. LIME's weighted R², the segment count).
    """

    attributions: np.ndarray
    method: str
    target: int | np.ndarray
    score: float | np.ndarray
    baseline_score: float | np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    n_queries: int = 0
    n_backward: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def is_batch(self) -> bool:
        """True when the attributions carry a leading batch axis."""
        return np.ndim(self.target) == 1

    def __len__(self) -> int:
        return len(self.target) if self.is_batch else 1

    def __getitem__(self, i: int) -> Explanation:
        """The i-th explicand of a batch as a single Explanation (counts stay the batch's totals)."""
        if not self.is_batch:
            if i not in (0, -1):
                raise IndexError(i)
            return self

        def pick(v: Any) -> Any:
            return None if v is None else np.asarray(v)[i].item()

        diagnostics = {
            k: (np.asarray(v)[i].item() if np.ndim(v) == 1 and len(v) == len(self) else v)
            for k, v in self.diagnostics.items()
        }
        return dataclasses.replace(
            self,
            attributions=self.attributions[i],
            target=int(np.asarray(self.target)[i]),
            score=pick(self.score),
            baseline_score=pick(self.baseline_score),
            diagnostics=diagnostics,
        )

    @property
    def completeness_gap(self) -> float | np.ndarray | None:
        """Σ attributions − (f(x) − f(x̂)), per explicand; ``None`` without a baseline score.

        The convergence delta of Integrated Gradients (Sundararajan et al. 2017) and of GEEX
        (Cai & Wunder 2024, Prop. 1): zero for a method that satisfies completeness exactly.
        """
        if self.baseline_score is None:
            return None
        axes = tuple(range(1 if self.is_batch else 0, self.attributions.ndim))
        total = self.attributions.sum(axis=axes, dtype=np.float64)
        gap = total - (np.asarray(self.score, np.float64) - np.asarray(self.baseline_score, np.float64))
        return float(gap) if np.ndim(gap) == 0 else gap

    @property
    def query_efficiency(self) -> float:
        """``model_seconds / seconds``: 1.0 means all the time was spent in the model."""
        return self.model_seconds / self.seconds if self.seconds > 0 else 0.0

    def saliency(self, reduce: Reduce = "mean") -> np.ndarray:
        """Channel-reduced map, (H,W) or (B,H,W).

        ``"mean"`` and ``"sum"`` keep the sign (what AOPC ranks on); ``"abs"`` is the mean
        of absolute values over channels.
        """
        a = self.attributions
        axis = 1 if self.is_batch else 0
        if reduce == "mean":
            return a.mean(axis=axis)
        if reduce == "sum":
            return a.sum(axis=axis)
        if reduce == "abs":
            return np.abs(a).mean(axis=axis)
        raise InvalidInputError(f"reduce must be 'mean', 'sum' or 'abs', not {reduce!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Everything but the attributions, as JSON-ready types."""
        out = {
            f.name: to_jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if f.name != "attributions"
        }
        out["completeness_gap"] = to_jsonable(self.completeness_gap)
        out["shape"] = list(self.attributions.shape)
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one ``.npz`` holding the attributions and a JSON record of the rest (atomic)."""
        path = check_output_path(path, "explanation path")
        if path.suffix != ".npz":
            path = check_output_path(path.with_name(path.name + ".npz"), "explanation path")
        meta = self.to_dict()
        meta["format_version"] = _FORMAT_VERSION
        buffer = io.BytesIO()
        np.savez(buffer, attributions=self.attributions, meta=np.array(json.dumps(meta)))
        with atomic_write(path) as handle:
            handle.write(buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Explanation:
        """Read an Explanation written by :meth:`save`."""
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidInputError(f"the explanation path must be a str or os.PathLike, not {type(path).__name__}.")
        try:
            with np.load(path, allow_pickle=False) as data:
                attributions = data["attributions"]
                meta = json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise InvalidInputError(f"{path} is not an onnxplain explanation file ({exc}).") from exc
        kwargs = {f.name: meta[f.name] for f in dataclasses.fields(cls) if f.name in meta}
        for name in ("target", "score", "baseline_score"):
            if isinstance(kwargs.get(name), list):
                kwargs[name] = np.asarray(kwargs[name])
        return cls(attributions=attributions, **kwargs)
