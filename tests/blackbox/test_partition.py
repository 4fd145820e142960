"""Partition SHAP: parity with shap's PartitionExplainer, a plain heapq oracle with the seeded
tie-break, efficiency at every budget, additive and symmetric games, the query count,
invariances and errors."""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import pytest

from onnxplain.blackbox import PartitionSHAP
from onnxplain.blackbox.partition import OwenState, bisection_tree, internal_visits
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.base import FunctionModel
from onnxplain.registry import get_method

from .conftest import flat

SHAPE = (3, 7, 6)


def generic_fn(seed: int = 0, shape=SHAPE):
    """Four classes, tanh and squares of random projections: no two visits tie in priority."""
    proj = np.random.default_rng(seed).normal(size=(int(np.prod(shape)), 4))

    def f(z):
        u = flat(z) @ proj
        return np.tanh(u / 4) + 0.1 * u**2 / 16

    return f


def explicand(seed: int = 1, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(shape).astype(np.float32), rng.random(shape).astype(np.float32)


def test_parity_with_shap_partition_explainer():
    """shap 0.51 ``PartitionExplainer`` with an ``Image`` masker holding x̂ as its background,
    ``batch_size=64`` (our step), ``outputs=[t]``: same values (float32 rounding of our map) and
    the same number of model evaluations at every even budget, including a full expansion
    (E = 6933 visits). The model has no priority ties, so shap's unseeded tie-break never acts."""
    shap = pytest.importorskip("shap")
    fn = generic_fn()
    x, b = explicand()
    c, h, w = SHAPE
    evaluated = [0]

    def f_hwc(batch):  # shap passes (n, H, W, C)
        evaluated[0] += len(batch)
        return fn(np.asarray(batch).reshape(len(batch), h, w, c).transpose(0, 3, 1, 2))

    assert internal_visits(SHAPE) == 6933
    for budget in (2, 10, 66, 500):
        explainer = shap.PartitionExplainer(f_hwc, shap.maskers.Image(b.transpose(1, 2, 0).copy()))
        evaluated[0] = 0
        ref = explainer(x.transpose(1, 2, 0)[None], max_evals=budget, batch_size=64, outputs=[2], silent=True)
        ref_map = ref.values[0][..., 0].transpose(2, 0, 1)
        model = FunctionModel(fn, SHAPE, 4)
        ours = PartitionSHAP(budget, baseline=b).explain(model, x, target=2)
        np.testing.assert_allclose(ours.attributions, ref_map, rtol=1e-5, atol=1e-6 * np.abs(ref_map).max())
        assert ours.n_queries == model.n_queries == evaluated[0] == budget


# -- an independent oracle: shap's recursion in plain Python (heapq, full masks) --------------------
def build_tree(lo: tuple[int, ...], hi: tuple[int, ...]) -> dict:
    """The bisection rule written as a recursion on (h, w, c) boxes."""
    ext = [b - a for a, b in zip(lo, hi, strict=True)]
    node = {"lo": lo, "hi": hi, "size": int(np.prod(ext))}
    if node["size"] > 1:
        axis = 0 if ext[0] >= ext[1] and ext[0] > 1 else (1 if ext[1] > 1 else 2)
        mid = lo[axis] + (ext[axis] + 1) // 2
        node["left"] = build_tree(lo, tuple(mid if i == axis else v for i, v in enumerate(hi)))
        node["right"] = build_tree(tuple(mid if i == axis else v for i, v in enumerate(lo)), hi)
    return node


def box(node: dict, shape) -> np.ndarray:
    m = np.zeros(shape, bool)
    (h0, w0, c0), (h1, w1, c1) = node["lo"], node["hi"]
    m[c0:c1, h0:h1, w0:w1] = True
    return m


def owen_oracle(f, x, b, budget: int, ties, per_step: int = 32) -> np.ndarray:
    """Owen values by shap's priority recursion: visits (mask m00, f00, f11, node, w) in a heap
    keyed (−|f11 − f00|·w, tie key); ``per_step`` pops per batch; unexpanded visits spread
    (f11 − f00)·w evenly over their node."""
    shape = x.shape
    root = build_tree((0, 0, 0), (shape[1], shape[2], shape[0]))
    out = np.zeros(shape)

    def query(mask):
        return f(np.where(mask, x, b)[None])[0]

    heap = [(0.0, 0.0, 0, (np.zeros(shape, bool), query(np.zeros(shape, bool)), query(np.ones(shape, bool)), root, 1.0))]
    counter, evals, step = itertools.count(1), 0, 0
    while heap:
        batch = []
        while heap and len(batch) < per_step and evals + 2 * len(batch) + 2 <= budget - 2:
            m00, f00, f11, node, w = heapq.heappop(heap)[3]
            if node["size"] == 1:
                out[box(node, shape)] += (f11 - f00) * w
            else:
                batch.append((m00, f00, f11, node, w))
        if not batch:
            break
        keys = ties(step)
        for i, (m00, f00, f11, node, w) in enumerate(batch):
            m10, m01 = m00 | box(node["left"], shape), m00 | box(node["right"], shape)
            f10, f01 = query(m10), query(m01)
            kids = [(m00, f00, f10, node["left"]), (m00, f00, f01, node["right"]),
                    (m01, f01, f11, node["left"]), (m10, f10, f11, node["right"])]
            for j, (m, a, z, kid) in enumerate(kids):
                heapq.heappush(heap, (-abs(z - a) * w / 2, keys[4 * i + j], next(counter), (m, a, z, kid, w / 2)))
        evals += 2 * len(batch)
        step += 1
    for _, _, _, (_, f00, f11, node, w) in heap:
        out[box(node, shape)] += (f11 - f00) * w / node["size"]
    return out


@pytest.mark.parametrize("kind", ["generic", "linear"])
def test_matches_a_plain_heapq_oracle_with_the_seeded_tie_break(kind: str):
    """The linear model ties constantly (a node's change is the same in both contexts), so this
    also pins the tie-break: keys from ``tie_keys(step)`` in push order, smaller first."""
    shape = (2, 5, 4)
    if kind == "generic":
        fn = generic_fn(3, shape)
    else:
        wts = np.random.default_rng(4).normal(size=int(np.prod(shape)))
        fn = lambda z: np.stack([flat(z) @ wts, -(flat(z) @ wts)], axis=1)  # noqa: E731
    x, b = explicand(5, shape)
    for budget in (4, 9, 70, 134, 300, 10_000):
        ps = PartitionSHAP(budget, baseline=b, seed=11)
        ours = ps.explain(FunctionModel(fn, shape, fn(x[None]).shape[1]), x, target=0)
        ref = owen_oracle(lambda z: fn(z)[:, 0], x.astype(np.float64), b.astype(np.float64), budget, ps.tie_keys)
        np.testing.assert_allclose(ours.attributions, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_efficiency_holds_at_every_budget():
    fn = generic_fn()
    x, b = explicand()
    tree = bisection_tree(SHAPE)
    model = FunctionModel(fn, SHAPE, 4)
    for budget in (2, 3, 5, 64, 65, 311, 4000):
        exp = PartitionSHAP(budget, baseline=b).explain(model, x, target=1)
        assert abs(exp.completeness_gap) < 1e-6 * abs(exp.score - exp.baseline_score)  # float32 map
    state = OwenState(tree, f_b=0.25, f_x=1.75, evals=0)  # no expansion: one uniform share
    np.testing.assert_allclose(state.values(), np.full(SHAPE, 1.5 / np.prod(SHAPE)), rtol=1e-12)
    # float64 bookkeeping with arbitrary query values: the credits telescope to f(x) − f(x̂)
    rng = np.random.default_rng(9)
    state = OwenState(tree, f_b=-0.3, f_x=2.2, evals=999)
    for _ in range(20):
        visits = state.take(state.select())
        state.expand(visits, rng.normal(size=len(visits[0])), rng.normal(size=len(visits[0])), rng.random(128))
    assert state.expanded == 499 and state.values().sum() == pytest.approx(2.5, abs=1e-12)


def test_additive_model_exact_leaves_and_uniform_unexpanded_boxes():
    """f = Σ c·z with c·(x − x̂) > 0 and within a factor 1.5: priorities fall by ≈ 4 per level, so
    a budget of 2 + 2·Σ_{d<L} (nodes at d)·2^d expands exactly the levels above L, and every box
    of depth L gets its exact total c·(x − x̂), spread evenly; the full budget gives c·(x − x̂)."""
    shape = (1, 8, 8)
    rng = np.random.default_rng(6)
    x, b = np.ones(shape, np.float32), np.zeros(shape, np.float32)
    contrib = rng.uniform(1.0, 1.5, shape)
    fn = lambda z: np.stack([flat(z) @ contrib.ravel()] * 2, axis=1)  # noqa: E731
    tree = bisection_tree(shape)
    for level in range(4):
        budget = 2 + 2 * sum(len(tree.levels[d]) << d for d in range(level))
        exp = PartitionSHAP(budget, baseline=b).explain(FunctionModel(fn, shape, 2), x, target=0)
        expected = np.zeros(shape)
        for node in tree.levels[level]:
            (h0, w0, _), (h1, w1, _) = tree.lo[node], tree.hi[node]
            expected[:, h0:h1, w0:w1] = contrib[:, h0:h1, w0:w1].mean()
        np.testing.assert_allclose(exp.attributions, expected, rtol=1e-6)
    full = PartitionSHAP(10**6, baseline=b).explain(FunctionModel(fn, shape, 2), x, target=0)
    np.testing.assert_allclose(full.attributions, contrib, rtol=1e-6)


def test_full_expansion_dummy_and_symmetric_siblings():
    """On a 1×2×2 image the tree is A = {(0,0),(0,1)} | B = {(1,0),(1,1)}. With x = 1, x̂ = 0,
    f = z₀₀z₀₁ + z₁₀(z₀₀ + z₀₁) is symmetric in the siblings (0,0), (0,1) and ignores (1,1). Owen
    values: A and B split f(x) = 3 as the Shapley values of the two-group game (v(A) = 1,
    v(B) = 0): A gets ½·1 + ½·3 = 2, B gets 1; inside A the symmetric pair gets 1 each, inside B
    the dummy gets 0."""
    shape = (1, 2, 2)

    def fn(z):
        r = flat(z)
        v = r[:, 0] * r[:, 1] + r[:, 2] * (r[:, 0] + r[:, 1])
        return np.stack([v, -v], axis=1)

    exp = PartitionSHAP(100, baseline=0.0).explain(FunctionModel(fn, shape, 2), np.ones(shape, np.float32), 0)
    np.testing.assert_allclose(exp.attributions[0], [[1.0, 1.0], [1.0, 0.0]], atol=1e-7)
    assert exp.n_queries == 2 + 2 * internal_visits(shape) == 2 + 2 * 5


def test_internal_visit_count_matches_a_recursion():
    def visits(node: dict, depth: int = 0) -> int:
        if node["size"] == 1:
            return 0
        return (1 << depth) + visits(node["left"], depth + 1) + visits(node["right"], depth + 1)

    for shape in ((1, 1, 2), (3, 7, 6), (1, 28, 28), (3, 5, 13)):
        c, h, w = shape
        assert internal_visits(shape) == visits(build_tree((0, 0, 0), (h, w, c)))
        assert len(bisection_tree(shape).size) == 2 * c * h * w - 1


@pytest.mark.parametrize("batch", [False, True])
def test_query_accounting_and_budget_refusal(batch: bool):
    x, b = explicand()
    xs = np.stack([x, b]) if batch else x
    for budget in (7, 200):
        ps = PartitionSHAP(budget)
        model = FunctionModel(generic_fn(), SHAPE, 4)
        exp = ps.explain(model, xs, target=0)
        per = 2 + 2 * ((budget - 2) // 2)  # never more than the budget (7 → 6)
        assert exp.n_queries == model.n_queries == (2 if batch else 1) * per
        short = FunctionModel(generic_fn(), SHAPE, 4, max_queries=exp.n_queries - 1)
        with pytest.raises(QueryBudgetExceeded):
            ps.explain(short, xs, target=0)
        assert short.n_queries == 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_same_map_whatever_queries_per_call_and_batch_composition(backend: str):
    if backend == "torch":
        pytest.importorskip("torch")
    model = FunctionModel(generic_fn(), SHAPE, 4)
    xs = np.stack([explicand(s)[0] for s in range(3)])
    ref = PartitionSHAP(300, baseline="blur", array_backend=backend).explain(model, xs, target=[0, 1, 3])
    for qpc in (1, 7, 1000):
        other = PartitionSHAP(300, baseline="blur", array_backend=backend, queries_per_call=qpc)
        np.testing.assert_array_equal(other.explain(model, xs, target=[0, 1, 3]).attributions, ref.attributions)
    alone = PartitionSHAP(300, baseline="blur", array_backend=backend).explain(model, xs[2], target=3)
    np.testing.assert_array_equal(alone.attributions, ref.attributions[2])
    if backend == "torch":  # the same queries, bit for bit, on both backends
        host = PartitionSHAP(300, baseline="blur", array_backend="numpy").explain(model, xs, target=[0, 1, 3])
        np.testing.assert_array_equal(ref.attributions, host.attributions)


def test_the_tie_break_is_seeded_and_recorded():
    """1×1×4 image, f = z·(1, 2, 2, 1), x = 1, x̂ = 0: the root splits P = {0,1} | Q = {2,3}, and
    its four child visits (P|∅, Q|∅, P|Q, Q|P, pushed in that order) all tie at −3·½. A budget of
    6 expands one more visit: the one with the smallest tie key of step 0. Expanding a P visit
    resolves P to (1.25, 1.75) and leaves Q at (1.5, 1.5); a Q visit does the reverse."""
    shape = (1, 1, 4)
    model = FunctionModel(lambda z: np.stack([flat(z) @ [1.0, 2.0, 2.0, 1.0]] * 2, axis=1), shape, 2)
    x = np.ones(shape, np.float32)
    seen = set()
    for seed in range(8):
        ps = PartitionSHAP(6, baseline=0.0, seed=seed)
        got = ps.explain(model, x, target=0).attributions[0, 0]
        p_first = int(np.argmin(ps.tie_keys(0)[:4])) in (0, 2)
        np.testing.assert_allclose(got, [1.25, 1.75, 1.5, 1.5] if p_first else [1.5, 1.5, 1.75, 1.25], rtol=1e-6)
        seen.add(p_first)
        np.testing.assert_array_equal(ps.explain(model, x, target=0).attributions[0, 0], got)  # seeded
    assert seen == {True, False}
    assert ps.explain(model, x, 0).params["seed"] == 7 and ps.params()["n_queries"] == 6
    assert get_method("partitionshap") is PartitionSHAP


@pytest.mark.parametrize(("kwargs", "match"), [({"n_queries": 1}, "n_queries"), ({"baseline": "noise"}, "baseline")])
def test_constructor_rejects_bad_settings(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        PartitionSHAP(**kwargs)
