"""What a report shows, as plain data: filled by the CLI (or a user), rendered by :mod:`.html`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["black-box", "white-box"]


@dataclass(frozen=True)
class MetricInfo:
    """A faithfulness metric's display name, direction and protocol (shown in the legend)."""

    name: str
    higher_is_better: bool
    description: str = ""


@dataclass
class MapResult:
    """One method's map for one image, with its scores and cost."""

    method: str
    kind: Kind
    saliency: np.ndarray  # (H, W), channel-reduced, signed
    metrics: dict[str, float] = field(default_factory=dict)
    n_queries: int = 0
    n_backward: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    completeness_gap: float | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageResult:
    """One explicand: its picture, prediction, maps, perturbation curves and method agreement."""

    name: str
    source: str
    image: np.ndarray  # (C, H, W) in [0, 1]
    target: int
    label: str
    score: float
    true_label: str | None = None
    top: list[tuple[str, float]] = field(default_factory=list)
    maps: list[MapResult] = field(default_factory=list)
    # curve name (e.g. "deletion") -> method -> (x, y)
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    agreement_methods: list[str] = field(default_factory=list)
    agreement: np.ndarray | None = None  # (M, M), e.g. Spearman rank correlation
    # several agreement tables: title (measure and scale, e.g. "Spearman, 14×14") -> (M, M);
    # when given they are shown instead of ``agreement``
    agreements: dict[str, np.ndarray] = field(default_factory=dict)

    def agreement_tables(self, default_name: str) -> dict[str, np.ndarray]:
        """Every agreement matrix of this image by title."""
        if self.agreements:
            return dict(self.agreements)
        return {} if self.agreement is None else {default_name: self.agreement}


@dataclass
class ReportData:
    """Everything on the page; ``settings``/``parity``/``model`` are shown as key–value tables.

    ``summary`` holds each method's score per metric over all images, aggregated by the metric
    itself (e.g. AOPC's ratio of mean curves): the report shows these numbers as given, so its
    summary table and ``results.json`` cannot disagree.
    """

    title: str
    images: list[ImageResult]
    metrics: list[MetricInfo] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    parity: dict[str, Any] | None = None
    summary: dict[str, dict[str, float]] = field(default_factory=dict)
    agreement_name: str = "Spearman rank correlation"
    command: str = ""
    notes: list[str] = field(default_factory=list)
