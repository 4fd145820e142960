"""Query accounting and the budget, for every black-box method of ``conftest.METHODS`` and for one
explicand as well as a batch: what the model counted, what the Explanation reports and what the
method declares must agree, and a budget one query short is refused before any query is spent.

A method joins these tests by one line in ``tests/blackbox/conftest.py`` (``METHODS``).
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import RISE
from onnxplain.errors import QueryBudgetExceeded

from .conftest import Method, SpyModel, method_params, tanh_scores

BUDGET = 131  # odd, and not a multiple of the 64-query block: the last block and pair are partial
BATCH = 3


def explicands(shape: tuple[int, ...], batch: int | None) -> np.ndarray:
    rng = np.random.default_rng(7)
    if batch is None:
        return rng.uniform(0.1, 1.0, shape).astype(np.float32)
    return rng.uniform(0.1, 1.0, (batch, *shape)).astype(np.float32)


@pytest.mark.parametrize("batch", [None, BATCH], ids=["one", "batch"])
@pytest.mark.parametrize("method", method_params())
def test_model_counter_explanation_and_declared_cost_agree(method: Method, batch: int | None) -> None:
    explainer = method.make(BUDGET, seed=1, queries_per_call=100)
    b = 1 if batch is None else batch
    per = explainer.queries_per_explicand(method.shape)
    assert per == method.cost(BUDGET)
    model = SpyModel(tanh_scores(method.shape), method.shape)
    exp = explainer.explain(model, explicands(method.shape, batch), target=None if batch else 0)
    assert model.n_queries == exp.n_queries == b * per == len(model.sent)
    assert exp.params[explainer.budget_param] == BUDGET


@pytest.mark.parametrize("batch", [None, BATCH], ids=["one", "batch"])
@pytest.mark.parametrize("method", method_params())
def test_a_budget_one_query_short_is_refused_before_any_query(method: Method, batch: int | None) -> None:
    explainer = method.make(BUDGET, seed=1, queries_per_call=100)
    x = explicands(method.shape, batch)
    needed = (1 if batch is None else batch) * method.cost(BUDGET)
    short = SpyModel(tanh_scores(method.shape), method.shape, max_queries=needed - 1)
    with pytest.raises(QueryBudgetExceeded, match=str(needed)):
        explainer.explain(short, x)
    assert short.n_queries == 0 and not short.batches
    # Queries already spent count against the budget: one spent, exactly `needed` allowed.
    spent = SpyModel(tanh_scores(method.shape), method.shape, max_queries=needed)
    spent(x.reshape(-1, *method.shape)[:1])
    with pytest.raises(QueryBudgetExceeded):
        explainer.explain(spent, x)
    assert spent.n_queries == 1
    # Exactly enough: the explanation runs and uses all of it.
    exact = SpyModel(tanh_scores(method.shape), method.shape, max_queries=needed)
    exp = explainer.explain(exact, x)
    assert exact.n_queries == exp.n_queries == needed


@pytest.mark.parametrize(
    ("batch", "per_call", "sizes"),
    [
        # 300 queries = blocks of 64, 64, 64, 64, 44; a call holds ⌊per_call / (64·B)⌋ ≥ 1 blocks per explicand
        (1, 128, [128, 128, 44]),
        (2, 256, [256, 256, 88]),
        (3, 100, [192, 192, 192, 192, 132]),
        (1, 10_000, [300]),
    ],
)
def test_queries_are_grouped_into_calls_as_documented(batch: int, per_call: int, sizes: list[int]) -> None:
    shape = (1, 6, 6)
    model = SpyModel(tanh_scores(shape), shape, batch_size=100_000)
    x = explicands(shape, batch)
    RISE(300, grid=3, queries_per_call=per_call).explain(model, x, target=0)
    assert [len(b) for b in model.batches] == [batch, *sizes]  # f(x) first, then the masked queries


@pytest.mark.parametrize("method", method_params())
def test_wall_and_model_seconds_are_measured_around_the_call(method: Method) -> None:
    import time

    def slow(rows: np.ndarray) -> np.ndarray:
        time.sleep(0.003)  # per model call
        return tanh_scores(method.shape)(rows)

    model = SpyModel(slow, method.shape)
    model.model_seconds = 5.0  # time spent before this explanation is not counted
    t0 = time.perf_counter()
    exp = method.make(130, queries_per_call=64).explain(model, explicands(method.shape, None), target=0)
    wall = time.perf_counter() - t0
    calls = len(model.batches)
    assert 0.003 * calls <= exp.model_seconds <= exp.seconds <= wall


@pytest.mark.parametrize("method", method_params())
def test_common_options_are_kept_and_queries_per_call_is_honoured(method: Method) -> None:
    explainer = method.make(200, seed=4, queries_per_call=64, array_backend="numpy")
    assert (explainer.seed, explainer.queries_per_call, explainer.array_backend) == (4, 64, "numpy")
    assert explainer.budget == 200
    model = SpyModel(tanh_scores(method.shape), method.shape, batch_size=100_000)
    exp = explainer.explain(model, explicands(method.shape, None), target=0)
    sizes = [len(b) for b in model.batches]
    assert max(sizes) <= 64 and sum(sizes) == exp.n_queries
    assert exp.params["seed"] == 4 and exp.params["array_backend"] == "numpy"
