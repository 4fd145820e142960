"""Property tests over the explainers' constructor arguments (Hypothesis).

For every registered method, Hypothesis draws up to two constructor arguments and gives each a
random value: an int, a float (NaN and ±inf included, finite ones within ±1e6), a string (random
or one of the option names the methods use), None, a bool, a small array or a tuple. The
property: the constructor either refuses with InvalidInputError, or the explainer explains the
tiny counting model with a finite map of the explicand's shape. Three quarters of the values are
plausible ones of the parameter default's kind (small positive ints, floats in (0, 1], option
names, bools, kernel pairs), so that a fair share of draws builds an explainer and reaches
``explain``. The one other allowed answer is
an InvalidInputError from ``explain`` raised before any query: checks that need the explicand
(a grid larger than the image, a baseline or label array of another shape) can only run there;
after queries only when the model itself failed on what the method fed it (e.g. AttEXplore's
padded input-diversity images on a module that needs a fixed size: the torch error is the cause).
Any other exception type fails the property.

Budgets are drawn up to 40 so a valid explainer stays cheap; ``max_examples`` is small and the
examples are derandomised (the same on every run), so the module costs a few seconds.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onnxplain.errors import InvalidInputError
from onnxplain.models.base import FunctionModel
from onnxplain.registry import BLACKBOX, WHITEBOX, get_method
from tests.bad_input import cases_blackbox, cases_whitebox
from tests.bad_input.env import SHAPE, CountingFn, CountingNet

OPTION_NAMES = [
    "zero", "blur", "blur(3,1.0)", "mean", "auto", "grid", "slic", "quickshift", "lhs", "sobol",
    "pairwise", "reference", "inpainting", "blurring", "amplitude", "nearest", "bilinear", "exact",
    "none", "stratified", "uniform", "independent", "shared", "cycle", "random", "restore",
    "probs", "logits", "trapezoid", "riemann", "gauss", "pad", "resize", "evenly_spaced", "top",
    "cumulative", "paper", "numpy", "torch", "preserve", "channels_last", "cpu",
]  # fmt: skip

FLOATS = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, 1e-9]),
)
ARRAYS = st.sampled_from([(3,), (2,), SHAPE, (1, 8, 8), (8, 8), (2, 2), (3, 5, 5)]).flatmap(
    lambda shape: st.sampled_from(["float", "int", "nan", "str"]).map(lambda kind: _array(shape, kind))
)
VALUES = st.one_of(
    st.integers(min_value=-3, max_value=40),
    FLOATS,
    st.text(max_size=6),
    st.sampled_from(OPTION_NAMES),
    st.none(),
    st.booleans(),
    ARRAYS,
    st.tuples(st.integers(-2, 9), FLOATS),
    st.tuples(FLOATS, FLOATS),
)


def _plausible(default: Any) -> st.SearchStrategy[Any]:
    """Values of the default's kind a constructor may well accept, so that a fair share of draws
    builds an explainer and reaches ``explain``."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(min_value=1, max_value=24)
    if isinstance(default, float):
        return st.floats(min_value=0.01, max_value=1.0)
    if isinstance(default, str):
        return st.one_of(st.just(default), st.just(default), st.sampled_from(OPTION_NAMES))
    others = st.sampled_from([(3, 1.0), (5, 2.0), (0.0, 1.0), "zero", 0.0])
    return st.one_of(st.just(default), st.integers(min_value=1, max_value=24), others)


def _array(shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "int":
        return np.arange(int(np.prod(shape))).reshape(shape) % 4
    if kind == "str":
        return np.full(shape, "0")
    a = np.linspace(0.0, 1.0, int(np.prod(shape))).reshape(shape)
    if kind == "nan":
        a[(0,) * len(shape)] = np.nan
    return a


@st.composite
def _arguments(draw: st.DrawFn, cls: type) -> dict[str, Any]:
    """Up to two of ``cls``'s parameters, each a plausible value (3/4) or any value (1/4)."""
    params = {n: p.default for n, p in inspect.signature(cls).parameters.items() if p.kind is not p.VAR_KEYWORD}
    names = draw(st.lists(st.sampled_from(sorted(params)), max_size=2, unique=True))
    out = {}
    for name in names:
        plausible = _plausible(params[name])
        out[name] = draw(st.one_of(plausible, plausible, plausible, VALUES))
    return out


def _check(construct: Any, explain: Any, queries: Any, shape: tuple[int, ...]) -> None:
    """The property for one draw (see the module docstring)."""
    try:
        explainer = construct()
    except InvalidInputError:
        return
    try:
        exp = explain(explainer)
    except InvalidInputError as exc:
        module_failed = isinstance(exc.__cause__ or exc.__context__, RuntimeError)
        assert queries() == 0 or module_failed, f"InvalidInputError from explain after queries were spent: {exc}"
        return
    a = np.asarray(exp.attributions)
    assert a.shape == shape, a.shape
    assert np.isfinite(a).all(), "non-finite map"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


PROPERTY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", list(BLACKBOX))
def test_blackbox_constructor_refuses_or_explains(name: str) -> None:
    cls = get_method(name)
    x = np.random.default_rng(1).uniform(size=SHAPE).astype(np.float32)

    @PROPERTY
    @given(_arguments(cls))
    def prop(args: dict[str, Any]) -> None:
        fn = CountingFn()
        model = FunctionModel(fn, SHAPE, 4)
        _check(
            lambda: cls(**{**cases_blackbox.tiny(name), **args}),
            lambda e: e.explain(model, x),
            lambda: fn.rows,
            SHAPE,
        )

    prop()


@pytest.mark.parametrize("name", list(WHITEBOX))
def test_whitebox_constructor_refuses_or_explains(name: str) -> None:
    cls = get_method(name)
    x = np.random.default_rng(1).uniform(size=SHAPE).astype(np.float32)

    @PROPERTY
    @given(_arguments(cls))
    def prop(args: dict[str, Any]) -> None:
        net = CountingNet()
        _check(
            lambda: cls(**{**cases_whitebox.tiny(name), **args}),
            lambda e: e.explain(net, x),
            lambda: net.rows,
            SHAPE,
        )

    prop()
