"""Cases of the metrics that take no QueryModel: ``agreement`` (two maps) and
``randomisation_check`` (a torch module, refused at the door before any export)."""

from __future__ import annotations

from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError
from onnxplain.evaluation import agreement, randomisation_check
from tests.bad_input.env import SHAPE, Env
from tests.bad_input.inputs import BAD_SEEDS, BAD_X, X
from tests.bad_input.table import Case

GROUP = "metrics"


def _map(env: Env) -> np.ndarray:
    return env.x()


def _agree(a: Any = _map, b: Any = _map, **kw: Any):
    return lambda env: agreement(a(env), b(env), **kw)


def _agreement_cases() -> list[Case]:
    api = "agreement"
    bad_maps = {
        "NaN map": lambda env: np.full(SHAPE, np.nan),
        "maps of different sizes": lambda env: np.zeros((3, 5, 5)),
        "5-D map": lambda env: np.zeros((1, 1, *SHAPE)),
        "1-D map": lambda env: np.zeros(8),
        "string map": lambda env: np.full(SHAPE, "1"),
        "None map": lambda env: None,
    }
    out = [Case(GROUP, api, kind, _agree(b=m), InvalidInputError) for kind, m in bad_maps.items()]
    bad_options = {
        "zero fraction": {"fractions": (0.0,)},
        "fraction above 1": {"fractions": (1.5,)},
        "string fraction": {"fractions": ("0.1",)},
        "no fractions": {"fractions": ()},
        "fractions as a bare number": {"fractions": 0.1},
        "NaN fraction": {"fractions": (float("nan"),)},
        "unknown reduce": {"reduce": "max"},
        "unknown topk_by": {"topk_by": "magnitude"},
    }
    out += [Case(GROUP, api, kind, _agree(**kw), InvalidInputError) for kind, kw in bad_options.items()]

    def two(env: Env) -> np.ndarray:
        return env.x(2)

    out.append(Case(GROUP, api, "batches of 2 and 3 maps (batch first)", _agree(a=two, b=lambda env: env.x(3)), InvalidInputError))
    valid = {
        "read-only maps": lambda env: _readonly(env.x()),
        "integer maps (rankings)": lambda env: np.arange(192).reshape(SHAPE),
        "one map against a batch": two,
    }
    out += [Case(GROUP, api, kind, _agree(b=m), None) for kind, m in valid.items()]
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _explainers() -> tuple[Any, Any]:
    from onnxplain.blackbox import GEEX
    from onnxplain.gradients import Saliency

    return GEEX(n_queries=8), Saliency()


def _check(x: X | None = None, module: Any = None, **kw: Any):
    """randomisation_check with its exports going to ``env.out`` (which must stay absent)."""

    def run(env: Env) -> Any:
        bb, wb = _explainers()
        args = {"blackbox": bb, "whitebox": wb, "work_dir": env.out, **kw}
        net = env.net() if module is None else module(env)
        return randomisation_check(net, x(env) if x is not None else env.x(), **args)

    return run


def _randomisation_cases() -> list[Case]:
    api = "randomisation_check"
    out = [Case(GROUP, api, kind, _check(x), InvalidInputError) for kind, x in BAD_X.items() if kind != "int torch tensor explicand"]
    out += [Case(GROUP, api, kind, _check(seed=v), InvalidInputError) for kind, v in BAD_SEEDS.items()]
    out += [
        Case(GROUP, api, "module is a QueryModel", _check(module=lambda env: env.model()), InvalidInputError),
        Case(GROUP, api, "blackbox is a method name", _check(blackbox="geex"), InvalidInputError),
        Case(GROUP, api, "whitebox is None", _check(whitebox=None), InvalidInputError),
        Case(GROUP, api, "blackbox is a white-box method", _check(blackbox=_explainers()[1]), InvalidInputError),
        Case(GROUP, api, "unknown layer", _check(layers=["nope"]), InvalidInputError),
        Case(GROUP, api, "no layers", _check(layers=[]), InvalidInputError),
        Case(GROUP, api, "layers as one string", _check(layers="fc"), InvalidInputError),
        Case(GROUP, api, "unknown output", _check(output="prob"), InvalidInputError),
        Case(GROUP, api, "unknown reduce", _check(reduce="max"), InvalidInputError),
        Case(GROUP, api, "input_shape of the wrong rank", _check(input_shape=(8, 8)), InvalidInputError),
        Case(GROUP, api, "input_shape not matching x", _check(input_shape=(3, 9, 9)), InvalidInputError),
        Case(GROUP, api, "negative target", _check(target=-1), InvalidInputError),
        Case(GROUP, api, "target = num_classes", _check(target=4), InvalidInputError, may_query=True),
        Case(GROUP, api, "work_dir is a file", lambda env: _check(work_dir=env.file("taken"))(env), InvalidInputError),
    ]
    return out


def cases() -> list[Case]:
    return _agreement_cases() + _randomisation_cases()
