"""Cases of the query-only metrics (:mod:`onnxplain.evaluation`).

The four metrics that take ``(model, x, attributions)`` share the explicand, target, attribution
and model cases; each also gets its own option cases. The attributions of a case are x itself
(a valid map of x's shape whatever x is), so a valid unusual explicand is compared with its
contiguous float32 copy on the same map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError, NonFiniteOutputError, QueryBudgetExceeded
from onnxplain.evaluation import (
    aopc_deletion,
    completeness_gap,
    deletion_auc,
    infidelity,
    insertion_auc,
    random_order_reference,
)
from tests.bad_input.env import SHAPE, Env
from tests.bad_input.inputs import (
    BAD_COUNTS,
    BAD_SEEDS,
    BAD_TARGETS,
    BAD_X,
    VALID_TARGETS,
    VALID_X,
    X,
    reference_x,
)
from tests.bad_input.table import Case

GROUP = "metrics"

Metric = Callable[..., Any]
CURVE_METRICS: dict[str, tuple[Metric, dict[str, Any]]] = {
    "aopc_deletion": (aopc_deletion, {"stride": 16}),
    "insertion_auc": (insertion_auc, {"step": 16}),
    "deletion_auc": (deletion_auc, {"step": 16}),
    "infidelity": (infidelity, {"n_perturbations": 4}),
}
"""The (model, x, attributions) metrics and the options that keep them to a few queries."""

BAD_OPTIONS: dict[str, dict[str, Any]] = {
    "aopc_deletion": {
        **{f"{k} stride": {"stride": v} for k, v in BAD_COUNTS.items()},
        "zero fraction": {"fraction": 0.0},
        "fraction above 1": {"fraction": 1.5},
        "string fraction": {"fraction": "0.5"},
        "NaN fraction": {"fraction": float("nan")},
        "unknown replacement": {"replacement": "noise"},
        "replacement array of the wrong shape": {"replacement": np.zeros((3, 5, 5))},
        "NaN replacement array": {"replacement": np.full(SHAPE, np.nan)},
        "baseline of the wrong shape": {"baseline": np.zeros((3, 5, 5))},
        "negative noise_std": {"replacement": "gaussian", "noise_std": -1.0},
        "string noise_std": {"replacement": "gaussian", "noise_std": "1"},
        "even blur_size": {"replacement": "blur", "blur_size": 4},
        "unknown reduce": {"reduce": "max"},
        "unknown aggregate": {"aggregate": "median"},
        **{k: {"seed": v} for k, v in BAD_SEEDS.items()},
    },
    "insertion_auc": {
        **{f"{k} step": {"step": v} for k, v in BAD_COUNTS.items() if v is not None},
        "unknown substrate": {"substrate": "grey"},
        "substrate of the wrong shape": {"substrate": np.zeros((3, 5, 5))},
        "NaN substrate": {"substrate": float("nan")},
        "unknown mode": {"mode": "voxel"},
        "unknown reduce": {"reduce": "max"},
        "even blur_size": {"substrate": "blur", "blur_size": 4},
        "string blur_sigma": {"substrate": "blur", "blur_sigma": "5"},
    },
    "infidelity": {
        **{f"{k} n_perturbations": {"n_perturbations": v} for k, v in BAD_COUNTS.items()},
        "unknown perturbation": {"perturbation": "uniform"},
        "zero noise_std": {"noise_std": 0.0},
        "string noise_std": {"noise_std": "0.2"},
        "NaN noise_std": {"noise_std": float("nan")},
        "zero subset_fraction": {"subset_fraction": 0.0},
        "string subset_fraction": {"subset_fraction": "0.3"},
        "reversed clip": {"clip": (1.0, 0.0)},
        "one-value clip": {"clip": (0.0,)},
        "string clip": {"clip": "01"},
        "NaN clip": {"clip": (float("nan"), 1.0)},
        "string normalize": {"normalize": "yes"},
        **{k: {"seed": v} for k, v in BAD_SEEDS.items()},
    },
}
BAD_OPTIONS["deletion_auc"] = BAD_OPTIONS["insertion_auc"]
COMMON_BAD_OPTIONS: dict[str, dict[str, Any]] = {
    "zero batch_size": {"batch_size": 0},
    "bool batch_size": {"batch_size": True},
    "string batch_size": {"batch_size": "8"},
}

BAD_MAPS: dict[str, Callable[[Env], Any]] = {
    "NaN attributions": lambda env: np.full(SHAPE, np.nan),
    "attributions of the wrong shape": lambda env: np.zeros((3, 5, 5)),
    "attributions for another batch size": lambda env: np.zeros((2, *SHAPE)),
    "string attributions": lambda env: np.full(SHAPE, "1"),
    "None attributions": lambda env: None,
    "ragged attributions": lambda env: [[0.0], [1.0, 2.0]],
}


class _Metric:
    def __init__(self, name: str) -> None:
        self.name = name
        self.fn, self.tiny = CURVE_METRICS[name]

    def call(self, x: X, a: Callable[[Env], Any] | None = None, target: Any = None, model: dict | None = None, **kw: Any):
        def run(env: Env) -> Any:
            xv = x(env)
            av = a(env) if a is not None else reference_x(xv)
            return self.fn(env.model(**(model or {})), xv, av, target=target, **{**self.tiny, **kw})

        return run

    def same_score(self, x: X):
        def check(env: Env, result: Any) -> None:
            ref_x = reference_x(x(env))
            ref = self.fn(env.model(), ref_x, ref_x, **self.tiny)
            assert np.isfinite(result.score), result.score
            assert result.score == ref.score, (result.score, ref.score)

        return check


def _map(env: Env) -> np.ndarray:
    """A valid map for one explicand: the refusal must come from the bad x."""
    return env.x()


def _batch(batch: int | None) -> X:
    return lambda env: env.x(batch)


def _targets_check(classes: list[int]):
    def check(env: Env, result: Any) -> None:
        assert np.asarray(result.params["targets"]).tolist() == classes
        assert np.isfinite(result.score)

    return check


def _curve_cases(m: _Metric) -> list[Case]:
    api = m.name
    out = [Case(GROUP, api, kind, m.call(x, _map), InvalidInputError) for kind, x in BAD_X.items()]
    out += [Case(GROUP, api, kind, m.call(x), None, check=m.same_score(x)) for kind, x in VALID_X.items()]
    out += [Case(GROUP, api, kind, m.call(_batch(b), target=t), InvalidInputError) for kind, (t, b) in BAD_TARGETS.items()]
    out += [
        Case(GROUP, api, kind, m.call(_batch(b), target=t), None, check=_targets_check(c))
        for kind, (t, b, c) in VALID_TARGETS.items()
    ]
    out += [Case(GROUP, api, kind, m.call(_batch(None), a), InvalidInputError) for kind, a in BAD_MAPS.items()]
    out.append(Case(GROUP, api, "integer attributions (a ranking)", m.call(_batch(None), lambda env: np.arange(64).reshape(1, 8, 8)), None))
    for kind, kw in {**BAD_OPTIONS[m.name], **COMMON_BAD_OPTIONS}.items():
        out.append(Case(GROUP, api, kind, m.call(_batch(None), **kw), InvalidInputError))
    out += [
        Case(GROUP, api, "model answers NaN", m.call(_batch(2), model={"nan": True}), NonFiniteOutputError, may_query=True),
        Case(GROUP, api, "needs more than max_queries", m.call(_batch(2), model={"max_queries": 3}), QueryBudgetExceeded),
        Case(GROUP, api, "model is a path string", lambda env: m.fn("model.onnx", env.x(), env.x(), **m.tiny), InvalidInputError),
    ]
    return out


def _explanation(env: Env, batch: int | None = None) -> Any:
    """A GEEX explanation made on a model of its own (its queries are not the metric's)."""
    from onnxplain.blackbox import GEEX
    from onnxplain.models.base import FunctionModel
    from tests.bad_input.env import CLASSES, CountingFn

    return GEEX(n_queries=8).explain(FunctionModel(CountingFn(), SHAPE, CLASSES), env.x(batch))


def _completeness_cases() -> list[Case]:
    api = "completeness_gap"

    def gap(x: X | None = None, model: dict | None = None, batch: int | None = None, **kw: Any):
        def run(env: Env) -> Any:
            exp = _explanation(env, batch)
            xv = x(env) if x is not None else env.x(batch)
            return completeness_gap(exp, env.model(**(model or {})), xv, **kw)

        return run

    out = [Case(GROUP, api, kind, gap(x), InvalidInputError) for kind, x in BAD_X.items()]
    out += [Case(GROUP, api, kind, gap(x), None) for kind, x in VALID_X.items() if kind != "read-only strided batch"]
    out += [
        Case(GROUP, api, "not an Explanation", lambda env: completeness_gap(env.x(), env.model(), env.x()), InvalidInputError),
        Case(GROUP, api, "model without x", lambda env: completeness_gap(_explanation(env), env.model()), InvalidInputError),
        Case(GROUP, api, "x holds another number of explicands", gap(_batch(3), batch=2), InvalidInputError),
        Case(GROUP, api, "baseline of the wrong shape", gap(baseline=np.zeros((3, 5, 5))), InvalidInputError),
        Case(GROUP, api, "string baseline", gap(baseline="black"), InvalidInputError),
        Case(GROUP, api, "model answers NaN", gap(model={"nan": True}, batch=2), NonFiniteOutputError, may_query=True),
        Case(GROUP, api, "needs more than max_queries", gap(model={"max_queries": 1}), QueryBudgetExceeded),
        Case(GROUP, api, "model is a path string", lambda env: completeness_gap(_explanation(env), "m.onnx", env.x()), InvalidInputError),
    ]
    return out


def _random_order_cases() -> list[Case]:
    api = "random_order_reference"

    def ref(metric: Any = "deletion_auc", x: X | None = None, model: dict | None = None, **kw: Any):
        def run(env: Env) -> Any:
            xv = x(env) if x is not None else env.x()
            return random_order_reference(metric, env.model(**(model or {})), xv, **{"step": 16, **kw})

        return run

    out = [Case(GROUP, api, kind, ref(x=x), InvalidInputError) for kind, x in BAD_X.items()]
    out += [Case(GROUP, api, kind, ref(seed=v), InvalidInputError) for kind, v in BAD_SEEDS.items()]
    out += [
        Case(GROUP, api, "unknown metric name", ref("auc"), InvalidInputError),
        Case(GROUP, api, "metric is not a curve metric", ref(infidelity), InvalidInputError),
        Case(GROUP, api, "metric is None", ref(None), InvalidInputError),
        Case(GROUP, api, "option the metric does not take", ref(stride=2), InvalidInputError),
        Case(GROUP, api, "bad option of the metric", ref(step=0), InvalidInputError),
        Case(GROUP, api, "model answers NaN", ref(model={"nan": True}), NonFiniteOutputError, may_query=True),
        Case(GROUP, api, "needs more than max_queries", ref(model={"max_queries": 3}), QueryBudgetExceeded),
        Case(GROUP, api, "read-only explicand", ref(x=VALID_X["read-only explicand"]), None),
    ]
    return out


def cases() -> list[Case]:
    from tests.bad_input.cases_metrics_more import cases as more

    out = [c for name in CURVE_METRICS for c in _curve_cases(_Metric(name))]
    return out + _completeness_cases() + _random_order_cases() + more()
