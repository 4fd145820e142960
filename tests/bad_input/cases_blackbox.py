"""Cases of the black-box explainers: every method of ``onnxplain.registry.BLACKBOX``.

Each method is run at a tiny budget on the counting (3, 8, 8) FunctionModel. A method added to
the registry without an entry in :data:`TINY` is run with its budget parameter at 16.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from torch import nn

from onnxplain.errors import InvalidInputError, NonFiniteOutputError, QueryBudgetExceeded
from onnxplain.registry import BLACKBOX, get_method
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

GROUP = "black-box explainers"

TINY: dict[str, dict[str, Any]] = {
    "geex": {"n_queries": 8},
    "ge": {"n_queries": 8},
    "rise": {"n_masks": 8, "grid": 2},
    "lime": {"n_samples": 8, "segmentation": "grid", "n_segments": 4},
    "sobol": {"n_queries": 10, "grid": 2},
    "hsic": {"n_queries": 8, "grid": 2},
    "gefa": {"n_queries": 8},
    "occlusion": {"window": (3, 2, 2), "strides": (3, 2, 2)},
}
"""Constructor arguments that make each method cost about ten queries on (3, 8, 8)."""


def tiny(name: str) -> dict[str, Any]:
    cls = get_method(name)
    return dict(TINY.get(name, {cls.budget_param: 16}))


def takes(name: str, param: str) -> bool:
    return param in inspect.signature(get_method(name)).parameters


class _Method:
    """One registered method: build it (tiny settings plus overrides) and explain with it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cls = get_method(name)

    def build(self, **overrides: Any) -> Any:
        return self.cls(**{**tiny(self.name), **overrides})

    def explain(self, x: X, target: Any = None, model: dict[str, Any] | None = None, **overrides: Any):
        def call(env: Env) -> Any:
            return self.build(**overrides).explain(env.model(**(model or {})), x(env), target)

        return call

    def construct(self, **overrides: Any):
        return lambda env: self.build(**overrides)

    def same_map(self, x: X, target: Any = None):
        """Check: finite float32 map of x's shape, equal bit for bit to the contiguous copy's."""

        def check(env: Env, exp: Any) -> None:
            ref = self.build().explain(env.model(), reference_x(x(env)), target)
            a = exp.attributions
            assert a.dtype == np.float32, a.dtype
            assert a.shape == ref.attributions.shape, (a.shape, ref.attributions.shape)
            assert np.isfinite(a).all(), "non-finite map"
            assert np.array_equal(a, ref.attributions), "map differs from the contiguous float32 copy's"

        return check


def _targets_check(classes: list[int]):
    def check(env: Env, exp: Any) -> None:
        assert np.atleast_1d(exp.target).tolist() == classes, exp.target
        assert np.isfinite(exp.attributions).all()

    return check


def _method_cases(m: _Method) -> list[Case]:
    api = f"{m.cls.__name__}.explain"
    ctor = m.cls.__name__
    out: list[Case] = []
    for kind, x in BAD_X.items():
        out.append(Case(GROUP, api, kind, m.explain(x), InvalidInputError))
    for kind, x in VALID_X.items():
        out.append(Case(GROUP, api, kind, m.explain(x), None, check=m.same_map(x)))
    for kind, (target, batch) in BAD_TARGETS.items():
        out.append(Case(GROUP, api, kind, m.explain(_batch(batch), target), InvalidInputError))
    for kind, (target, batch, classes) in VALID_TARGETS.items():
        out.append(Case(GROUP, api, kind, m.explain(_batch(batch), target), None, check=_targets_check(classes)))
    budget = m.cls.budget_param
    optional = inspect.signature(m.cls).parameters[budget].default is None  # e.g. Occlusion: strides decide
    for kind, value in BAD_COUNTS.items():
        if value is None and optional:
            continue
        out.append(Case(GROUP, ctor, f"{kind} budget ({budget}={value!r})", m.construct(**{budget: value}), InvalidInputError))
    out.append(
        Case(GROUP, api, "budget above max_queries", m.explain(_batch(None), model={"max_queries": 5}), QueryBudgetExceeded)
    )
    out.append(
        Case(GROUP, api, "batch budget above max_queries", m.explain(_batch(3), model={"max_queries": 20}), QueryBudgetExceeded)
    )
    out.append(Case(GROUP, api, "model answers NaN", m.explain(_batch(2), model={"nan": True}), NonFiniteOutputError, may_query=True))
    out += [
        Case(GROUP, api, "model is a path string", _with_model(m, lambda env: "model.onnx"), InvalidInputError),
        Case(GROUP, api, "model is a torch module", _with_model(m, lambda env: nn.Linear(2, 2)), InvalidInputError),
        Case(GROUP, api, "model is None", _with_model(m, lambda env: None), InvalidInputError),
    ]
    for kind, value in BAD_SEEDS.items():
        out.append(Case(GROUP, ctor, kind, m.construct(seed=value), InvalidInputError))
    for kind, value in {"zero": 0, "bool": True, "string": "8", "float": 8.0}.items():
        out.append(Case(GROUP, ctor, f"{kind} queries_per_call", m.construct(queries_per_call=value), InvalidInputError))
    out.append(Case(GROUP, ctor, "unknown array_backend", m.construct(array_backend="jax"), InvalidInputError))
    if takes(m.name, "baseline"):
        out += _baseline_cases(m, api, ctor)
    return out


def _baseline_cases(m: _Method, api: str, ctor: str) -> list[Case]:
    bad_at_explain = {
        "baseline of the wrong spatial shape": np.zeros((3, 5, 5)),
        "baseline with 2 channel values for 3 channels": np.zeros(2),
        "baseline batch of the wrong size": np.zeros((5, *SHAPE)),
    }
    bad_at_construction = {
        "NaN baseline array": np.full(SHAPE, np.nan),
        "unknown baseline name": "black",
        "bool baseline": True,
        "2-D baseline array": np.zeros((8, 8)),
        "string-array baseline": np.full(SHAPE, "0"),
    }
    out = [
        Case(GROUP, api, kind, m.explain(_batch(2), baseline=value), InvalidInputError)
        for kind, value in bad_at_explain.items()
        if _inpainting(m)
    ]
    out += [Case(GROUP, ctor, kind, m.construct(baseline=value), InvalidInputError) for kind, value in bad_at_construction.items()]
    return out


def _inpainting(m: _Method) -> bool:
    """Whether an array baseline is legal for the method's default perturbation."""
    try:
        m.build(baseline=np.zeros(SHAPE))
    except InvalidInputError:
        return False
    return True


def _with_model(m: _Method, model: Any):
    return lambda env: m.build().explain(model(env), env.x())


def _batch(batch: int | None) -> X:
    return lambda env: env.x(batch)


def cases() -> list[Case]:
    return [c for name in BLACKBOX for c in _method_cases(_Method(name))]
