"""Cases of the white-box explainers: every method of ``onnxplain.registry.WHITEBOX``.

Each method runs at a tiny setting on :class:`~tests.bad_input.env.CountingNet` (3, 8, 8 → 4
classes). A torch module declares no class count, so a target ≥ the class count can only be
seen on the first forward (``may_query``); everything else is refused before the module runs.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from onnxplain.errors import DeviceUnavailableError, InvalidInputError, NonFiniteOutputError
from onnxplain.registry import WHITEBOX, get_method
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

GROUP = "white-box explainers"

TINY: dict[str, dict[str, Any]] = {
    "saliency": {},
    "ig": {"steps": 4},
    "smoothgrad": {"samples": 4},
    "agi": {"steps": 2, "n_classes": 2},
    "attexplore": {"n_approx": 2, "steps": 2},
    "la": {"steps": 2, "samples": 2},
}
"""Constructor arguments that keep each method to a few dozen passes on (3, 8, 8)."""

_CLASS_RANGE = {"target = num_classes", "target far out of range"}
_SHAPE = {"wrong channel count", "wrong height"}
"""A module declares neither its class count nor (unless it has ``input_shape``) its input
shape: these show on its first forward, which the refusal then follows."""


def tiny(name: str) -> dict[str, Any]:
    cls = get_method(name)
    return dict(TINY.get(name, {cls.budget_param: 2} if cls.budget_param else {}))


class _Method:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cls = get_method(name)
        self.params = inspect.signature(self.cls).parameters

    def build(self, **overrides: Any) -> Any:
        return self.cls(**{**tiny(self.name), **overrides})

    def explain(self, x: X, target: Any = None, nan: bool = False, declared: bool = False, **overrides: Any):
        def call(env: Env) -> Any:
            net = env.net(nan=nan)
            if declared:
                net.input_shape = SHAPE
            return self.build(**overrides).explain(net, x(env), target)

        return call

    def construct(self, **overrides: Any):
        return lambda env: self.build(**overrides)

    def same_map(self, x: X):
        def check(env: Env, exp: Any) -> None:
            ref = self.build().explain(env.net(), reference_x(x(env)))
            a = exp.attributions
            assert a.shape == ref.attributions.shape, (a.shape, ref.attributions.shape)
            assert np.isfinite(a).all(), "non-finite map"
            assert np.array_equal(a, ref.attributions), "map differs from the contiguous float32 copy's"

        return check


def _batch(batch: int | None) -> X:
    return lambda env: env.x(batch)


def _targets_check(classes: list[int]):
    def check(env: Env, exp: Any) -> None:
        assert np.atleast_1d(exp.target).tolist() == classes, exp.target
        assert np.isfinite(exp.attributions).all()

    return check


def _method_cases(m: _Method) -> list[Case]:
    api, ctor = f"{m.cls.__name__}.explain", m.cls.__name__
    out = [Case(GROUP, api, kind, m.explain(x), InvalidInputError, may_query=kind in _SHAPE) for kind, x in BAD_X.items()]
    out.append(Case(GROUP, api, "wrong shape for a module declaring input_shape", m.explain(lambda env: env.x()[:, :5], declared=True), InvalidInputError))
    out += [Case(GROUP, api, kind, m.explain(x), None, check=m.same_map(x)) for kind, x in VALID_X.items()]
    if _bounded(m):
        out.append(Case(GROUP, api, "explicand outside the pixel range", m.explain(lambda env: env.x() - 2.0), InvalidInputError))
    for kind, (target, batch) in BAD_TARGETS.items():
        out.append(Case(GROUP, api, kind, m.explain(_batch(batch), target), InvalidInputError, may_query=kind in _CLASS_RANGE))
    for kind, (target, batch, classes) in VALID_TARGETS.items():
        out.append(Case(GROUP, api, kind, m.explain(_batch(batch), target), None, check=_targets_check(classes)))
    out.append(Case(GROUP, api, "torch target tensor", m.explain(_batch(None), torch.tensor(2)), None, check=_targets_check([2])))
    if m.cls.budget_param:
        budget = m.cls.budget_param
        for kind, value in BAD_COUNTS.items():
            out.append(Case(GROUP, ctor, f"{kind} budget ({budget}={value!r})", m.construct(**{budget: value}), InvalidInputError))
    out.append(Case(GROUP, api, "module answers NaN", m.explain(_batch(2), nan=True), NonFiniteOutputError, may_query=True))
    out += [
        Case(GROUP, api, "model is a QueryModel", lambda env: m.build().explain(env.model(), env.x()), InvalidInputError),
        Case(GROUP, api, "model is None", lambda env: m.build().explain(None, env.x()), InvalidInputError),
    ]
    out += [
        Case(GROUP, ctor, "unknown output", m.construct(output="prob"), InvalidInputError),
        Case(GROUP, ctor, "zero batch_size", m.construct(batch_size=0), InvalidInputError),
        Case(GROUP, ctor, "bool batch_size", m.construct(batch_size=True), InvalidInputError),
        Case(GROUP, ctor, "string batch_size", m.construct(batch_size="8"), InvalidInputError),
        Case(GROUP, ctor, "unknown memory_format", m.construct(memory_format="nhwc"), InvalidInputError),
        Case(GROUP, ctor, "unknown device name", m.construct(device="tpu"), InvalidInputError),
        Case(GROUP, ctor, "bool device", m.construct(device=True), InvalidInputError),
    ]
    if not torch.cuda.is_available():
        out.append(Case(GROUP, api, "CUDA device on a machine without CUDA", m.explain(_batch(None), device="cuda"), DeviceUnavailableError))
    if "seed" in m.params:
        out += [Case(GROUP, ctor, kind, m.construct(seed=value), InvalidInputError) for kind, value in BAD_SEEDS.items()]
    if "abs" in m.params:
        out += [
            Case(GROUP, ctor, "string abs flag", m.construct(abs="no"), InvalidInputError),
            Case(GROUP, ctor, "int abs flag", m.construct(abs=2), InvalidInputError),
        ]
    if "baseline" in m.params:
        out += _baseline_cases(m, api, ctor)
    return out


def _bounded(m: _Method) -> bool:
    return "bounds" in m.params or m.name == "la"


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
        "string-array baseline": np.full(SHAPE, "0"),
    }
    out = [Case(GROUP, api, kind, m.explain(_batch(2), baseline=v), InvalidInputError) for kind, v in bad_at_explain.items()]
    out += [Case(GROUP, ctor, kind, m.construct(baseline=v), InvalidInputError) for kind, v in bad_at_construction.items()]
    return out


def cases() -> list[Case]:
    return [c for name in WHITEBOX for c in _method_cases(_Method(name))]
