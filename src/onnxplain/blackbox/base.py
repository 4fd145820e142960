"""The black-box family's template: :class:`BlackBoxExplainer` owns ``explain()``.

``explain`` does, once for every method: the clock, the explicands (shape and finiteness), the
method's own pre-query checks, the baseline, the budget check (before any query), the forward on
x (targets and f(x)) and on x̂, and the :class:`~onnxplain.explanation.Explanation`. A method
supplies only

- its name and its budget (:attr:`BlackBoxExplainer.budget_param`, the constructor argument that
  holds it, and :meth:`BlackBoxExplainer.queries_per_explicand`), so callers never inspect
  signatures;
- :meth:`BlackBoxExplainer._attribute`, the estimator, which streams its perturbations through
  :meth:`Call.run` (an object with ``draw``/``write``/``consume``, see
  :class:`~onnxplain.blackbox.streaming.Perturbations`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.blackbox.sampling import Ops, select_backend
from onnxplain.blackbox.streaming import Perturbations, stream, target_scores
from onnxplain.checks import check_choice, check_optional_positive_int, check_seed
from onnxplain.errors import InvalidInputError
from onnxplain.explanation import Explanation
from onnxplain.models.base import (
    QueryModel,
    Target,
    as_batch,
    check_budget,
    predict,
    queries_spent,
    time_spent,
)

ARRAY_BACKENDS: tuple[str, ...] = ("auto", "numpy", "torch")


class Clock:
    """Wall time and model time of one call (the adapter's ``model_seconds`` when it keeps one)."""

    def __init__(self, model: QueryModel) -> None:
        self.model = model
        self.t0 = time.perf_counter()
        self.m0 = time_spent(model)
        self.q0 = queries_spent(model)

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def model_seconds(self) -> float:
        return time_spent(self.model) - self.m0


def image_shape(model: QueryModel) -> tuple[int, int, int]:
    """The model's (C,H,W) sample shape; image explainers refuse other models."""
    shape = tuple(model.input_shape)
    if len(shape) != 3:
        raise InvalidInputError(f"image explainers need a model taking (C,H,W) samples; this one takes {shape}.")
    return shape  # type: ignore[return-value]


def prepare(model: QueryModel, x: Any) -> tuple[np.ndarray, bool]:
    """``x`` as a (B,C,H,W) float32 batch for an image model, and whether it was one explicand."""
    if not isinstance(model, QueryModel):
        raise InvalidInputError(
            f"model must be a QueryModel (OnnxModel, TorchModel, RemoteModel, FunctionModel, …), "
            f"got {type(model).__name__}; wrap a torch module in TorchModel."
        )
    image_shape(model)
    batch, single = as_batch(x, model.input_shape)
    if not np.isfinite(batch).all():
        raise InvalidInputError("the explicand holds NaN or infinite values.")
    return batch, single


@dataclass
class Call:
    """What one ``explain`` call knows once x has been queried: handed to the method's estimator.

    ``x`` (B,C,H,W) float32; ``targets`` (B,) int64; ``scores`` f_t(x) (B,) float64;
    ``baseline`` x̂ (B,C,H,W) and ``baseline_scores`` f_t(x̂) (B,) for methods with a baseline;
    ``setup`` what the method's :meth:`~BlackBoxExplainer._setup` returned before any query.
    """

    model: QueryModel
    ops: Ops
    x: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    queries_per_call: int | None
    baseline: np.ndarray | None = None
    baseline_scores: np.ndarray | None = None
    setup: Any = None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def run(self, perturbations: Perturbations) -> None:
        """Stream ``perturbations`` through the model (see :func:`~onnxplain.blackbox.streaming.stream`)."""
        stream(self.ops, self.model, perturbations, self.x, self.targets, self.queries_per_call)


@dataclass
class Attribution:
    """What a method's estimator returns: (B,C,H,W) attributions, resolved settings, diagnostics
    (per-explicand values as (B,) arrays)."""

    attributions: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)


class BlackBoxExplainer(ABC):
    """Base of the query-only explainers: configuration in ``__init__``, one :meth:`explain` call.

    Common arguments (keyword-only in every method):
        seed: seeds every perturbation; the same seed gives the same perturbation set for every
            explicand and bitwise-identical maps whatever ``queries_per_call``.
        queries_per_call: queries per model call, all explicands together (default: the
            model's preferred batch size, which :class:`~onnxplain.models.OnnxModel` measures).
        array_backend: the array library the queries are built with: ``"numpy"`` (host),
            ``"torch"`` (on ``model.device``, passed to the model as device tensors) or
            ``"auto"`` (torch for CUDA models).
    """

    name: ClassVar[str] = ""
    budget_param: ClassVar[str] = "n_queries"
    """The constructor argument that holds the method's query budget (what ``--queries`` sets)."""
    uses_baseline: ClassVar[bool] = False
    """Whether ``explain`` resolves :attr:`baseline` (x̂ of every explicand) before any query."""
    signed_map: ClassVar[bool] = True
    """False for maps that are all-positive by construction (an expected score or a sensitivity
    index); pictures then centre them (:func:`onnxplain.registry.is_signed`)."""
    scores_baseline: ClassVar[bool] = False
    """Whether ``explain`` also queries f(x̂) (reported as ``Explanation.baseline_score``)."""

    baseline: Baseline

    def __init__(self, *, seed: int = 0, queries_per_call: int | None = None, array_backend: str = "auto") -> None:
        self.seed = check_seed(seed)
        self.queries_per_call = check_optional_positive_int("queries_per_call", queries_per_call)
        self.array_backend = check_choice("array_backend", array_backend, ARRAY_BACKENDS)

    # -- what a method declares --------------------------------------------------------------------
    @property
    def budget(self) -> int:
        """The method's query budget (the value of :attr:`budget_param`)."""
        return int(getattr(self, self.budget_param))

    @abstractmethod
    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        """Forwards one explicand of ``input_shape`` costs, f(x) (and f(x̂)) included."""

    def params(self) -> dict[str, Any]:
        """Hyper-parameters recorded in every Explanation (methods extend)."""
        out: dict[str, Any] = {self.budget_param: self.budget, "seed": self.seed}
        if self.uses_baseline:
            out["baseline"] = self.describe_baseline()
        return out

    def describe_baseline(self) -> str | float:
        """The baseline setting as recorded in ``params`` (methods that resolve it per call say so)."""
        return self.baseline.describe()

    def baseline_for(self, batch: np.ndarray) -> Baseline:
        """The baseline of this call (a method whose default depends on the explicands overrides it)."""
        return self.baseline

    # -- what a method implements ------------------------------------------------------------------
    def _setup(self, batch: np.ndarray) -> Any:
        """Checks and preparations that need the explicands but no query (e.g. segmentation)."""
        return None

    @abstractmethod
    def _attribute(self, call: Call) -> Attribution:
        """The estimator: attributions of every explicand of ``call``."""

    # -- the template ------------------------------------------------------------------------------
    def explain(self, model: QueryModel, x: Any, target: Target = None) -> Explanation:
        """Explain ``x`` (C,H,W) or a batch (B,C,H,W) for ``target`` (None = top class on x)."""
        clock = Clock(model)
        ops = select_backend(self.array_backend, model)
        batch, single = prepare(model, x)
        setup = self._setup(batch)
        baseline = self.baseline_for(batch).resolve(batch) if self.uses_baseline else None
        n_total = len(batch) * self.queries_per_explicand(tuple(batch.shape[1:]))
        check_budget(model, n_total)
        targets, scores = predict(model, batch, target)
        call = Call(model, ops, batch, targets, scores, self.queries_per_call, setup=setup)
        call.baseline = baseline
        if baseline is not None and self.scores_baseline:
            call.baseline_scores = target_scores(model, baseline, targets)[:, 0]
        result = self._attribute(call)
        params = {**self.params(), "array_backend": ops.name, **result.params}
        return _explanation(self.name, call, single, result, params, clock, n_total)


def _explanation(
    name: str, call: Call, single: bool, result: Attribution, params: dict[str, Any], clock: Clock, n_queries: int
) -> Explanation:
    """One Explanation for the call: per-explicand values for a batch, scalars for one explicand."""
    attributions = np.ascontiguousarray(result.attributions, dtype=np.float32)
    base = call.baseline_scores
    diagnostics = dict(result.diagnostics)
    if single:
        diagnostics = {k: (v[0].item() if isinstance(v, np.ndarray) else v) for k, v in diagnostics.items()}
    return Explanation(
        attributions=attributions[0] if single else attributions,
        method=name,
        target=int(call.targets[0]) if single else call.targets,
        score=float(call.scores[0]) if single else call.scores,
        baseline_score=None if base is None else (float(base[0]) if single else base),
        params=params,
        n_queries=n_queries,
        seconds=clock.seconds(),
        model_seconds=clock.model_seconds(),
        diagnostics=diagnostics,
    )
