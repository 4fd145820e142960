"""Partition SHAP: Owen values over an axis-aligned bisection of the image (shap's
``PartitionExplainer`` with an ``Image`` masker; Lundberg et al., shap ≥ 0.36).

**Tree.** A fixed binary tree over the M = H·W·C elements: a box is halved along H if its height
is ≥ its width and > 1, else along W if its width is > 1, else along the channels; the first
half takes ⌈n/2⌉. (shap builds the halves the other way round but numbers its leaves in reverse
flat order, so its effective tree is exactly this one.)

**Recursion** (``owen`` in shap). A node visit carries a context mask m00 (the elements present
besides the node), f00 = f(m00) and f11 = f(m00 ∪ node) and a weight w (1 at the root, where
f00 = f(x̂) and f11 = f(x)). Expanding it queries f10 = f(m00 ∪ left) and f01 = f(m00 ∪ right) and
visits each child in both contexts with weight w/2:

    left | m00:  (f00, f10)    right | m00:  (f00, f01)
    left | m01:  (f01, f11)    right | m10:  (f10, f11)

A visit that is never expanded (a leaf, or a node left when the budget runs out) books
(f11 − f00)·w on its node; each node's booked credit is finally shared by its leaves in
proportion to their number (shap's ``lower_credit``). The booked credits telescope, so
Σ values = f(x) − f(x̂) exactly at every budget, and on a fully expanded tree the values are the
Owen values of the tree's coalition structure.

**Order and budget.** Visits wait in a priority queue keyed by −|f11 − f00|·w (largest change
first), ties broken by a seeded uniform key (shap: unseeded ``np.random.randn``). Each step
expands up to 32 visits of every explicand at once: the 64 queries of one block (shap's
``batch_size=64``). ``n_queries`` counts f(x) and f(x̂) (shap's ``max_evals``); a visit is expanded
only while two queries remain, so at most n_queries are spent (shap spends max_evals + 1 when
max_evals is odd) and exactly 2 + 2·min(E, ⌊(n_queries − 2)/2⌋), E the number of internal-node
visits of the full recursion. A visit is stored as (node, context bits, f00, f11, w), never as a
mask: memory is the tree (≈ 2M nodes) plus 48 bytes per waiting visit (≤ 1.5 per query), never
a mask per visit (shap keeps M booleans per visit).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.blackbox.base import Attribution, BlackBoxExplainer, Call
from onnxplain.blackbox.sampling import BLOCK, host_rng
from onnxplain.checks import check_positive_int
from onnxplain.errors import NonFiniteOutputError
from onnxplain.models.base import preferred_batch_size

VISITS_PER_STEP = BLOCK // 2
"""Visits expanded per explicand and step: two queries each, one block."""


def _halves(box: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The (h, w, c) extents of a box's two halves (first half ⌈n/2⌉)."""
    h, w, c = box
    axis = 0 if h >= w and h > 1 else (1 if w > 1 else 2)
    first = list(box)
    second = list(box)
    first[axis] = -(-box[axis] // 2)
    second[axis] = box[axis] // 2
    return tuple(first), tuple(second)  # type: ignore[return-value]


@functools.lru_cache(maxsize=64)
def internal_visits(shape: tuple[int, int, int]) -> int:
    """E: the internal-node visits of the full recursion on (C,H,W), Σ_internal 2^depth
    (a node at depth d is visited 2^d times). Counted over box extents, not nodes."""
    c, h, w = shape
    level: Counter[tuple[int, int, int]] = Counter({(h, w, c): 1})
    total, depth = 0, 0
    while level:
        below: Counter[tuple[int, int, int]] = Counter()
        for box, count in level.items():
            if box != (1, 1, 1):
                total += count << depth
                for half in _halves(box):
                    below[half] += count
        level, depth = below, depth + 1
    return total


@dataclass(frozen=True, eq=False)
class BisectionTree:
    """The bisection tree of a (C,H,W) shape, nodes numbered breadth-first (root 0).

    ``lo``/``hi`` (n, 3): the node's box [lo, hi) on the axes (h, w, c); ``left``/``right``:
    children (−1 at leaves); ``parent`` (−1 at the root), ``depth``, ``size`` (elements);
    ``levels``: the node ids of each depth.
    """

    shape: tuple[int, int, int]
    lo: np.ndarray
    hi: np.ndarray
    left: np.ndarray
    right: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    size: np.ndarray
    levels: tuple[np.ndarray, ...]

    def sibling(self, node: np.ndarray) -> np.ndarray:
        p = self.parent[node]
        return self.left[p] + self.right[p] - node


@functools.lru_cache(maxsize=2)
def bisection_tree(shape: tuple[int, int, int]) -> BisectionTree:
    """Build the tree level by level (vectorised over the nodes of a level)."""
    c, h, w = shape
    lo, hi = [np.zeros((1, 3), np.int64)], [np.array([[h, w, c]], np.int64)]
    parents, levels = [np.array([-1])], [np.array([0])]
    count = 1
    while True:
        l_lo, l_hi, ids = lo[-1], hi[-1], levels[-1]
        ext = l_hi - l_lo
        inner = ext.prod(axis=1) > 1
        if not inner.any():
            break
        ext, l_lo, l_hi, ids = ext[inner], l_lo[inner], l_hi[inner], ids[inner]
        axis = np.where((ext[:, 0] >= ext[:, 1]) & (ext[:, 0] > 1), 0, np.where(ext[:, 1] > 1, 1, 2))
        rows = np.arange(len(ids))
        mid = l_lo[rows, axis] + (ext[rows, axis] + 1) // 2
        first_hi, second_lo = l_hi.copy(), l_lo.copy()
        first_hi[rows, axis] = mid
        second_lo[rows, axis] = mid
        # children of the level's inner nodes, interleaved (first, second) per parent
        lo.append(np.stack([l_lo, second_lo], axis=1).reshape(-1, 3))
        hi.append(np.stack([first_hi, l_hi], axis=1).reshape(-1, 3))
        parents.append(np.repeat(ids, 2))
        levels.append(np.arange(count, count + 2 * len(ids)))
        count += 2 * len(ids)
    parent = np.concatenate(parents)
    left, right = np.full(count, -1), np.full(count, -1)
    kids = np.arange(1, count)
    left[parent[kids[::2]]] = kids[::2]
    right[parent[kids[1::2]]] = kids[1::2]
    lo_all, hi_all = np.concatenate(lo), np.concatenate(hi)
    depth = np.concatenate([np.full(len(ids), d) for d, ids in enumerate(levels)])
    arrays = (lo_all, hi_all, left, right, parent, depth, (hi_all - lo_all).prod(axis=1))
    for a in arrays:
        a.setflags(write=False)
    return BisectionTree(shape, *arrays, levels=tuple(levels))


class OwenState:
    """One explicand's recursion: the waiting visits (node, context bits, f00, f11, w) and the
    credit booked per node."""

    def __init__(self, tree: BisectionTree, f_b: float, f_x: float, evals: int) -> None:
        self.tree = tree
        self.node = np.zeros(1, np.int64)
        self.ctx = np.zeros(1, np.int64)  # bit d: the sibling of the depth-d ancestor is present
        self.f00, self.f11, self.w = np.array([f_b]), np.array([f_x]), np.ones(1)
        self.tie = np.zeros(1)
        self.credit = np.zeros(len(tree.size))
        self.left = evals  # queries this explicand may still spend
        self.expanded = 0

    def select(self) -> np.ndarray:
        """The next visits to expand: up to 32 (and 2 queries each within the budget), by
        priority −|f11 − f00|·w then tie key; removed from the queue and returned as indices."""
        k = min(VISITS_PER_STEP, self.left // 2, len(self.node))
        if k == 0:
            return np.zeros(0, np.int64)
        key = -np.abs(self.f11 - self.f00) * self.w
        if len(key) > k:  # O(queue) preselection, ties at the cut kept for the tie key
            cut = key[np.argpartition(key, k - 1)[k - 1]]
            cand = np.flatnonzero(key <= cut)
        else:
            cand = np.arange(len(key))
        return cand[np.lexsort((self.tie[cand], key[cand]))[:k]]

    def take(self, sel: np.ndarray) -> tuple[np.ndarray, ...]:
        out = (self.node[sel], self.ctx[sel], self.f00[sel], self.f11[sel], self.w[sel])
        keep = np.ones(len(self.node), bool)
        keep[sel] = False
        self.node, self.ctx, self.f00, self.f11, self.w, self.tie = (
            a[keep] for a in (self.node, self.ctx, self.f00, self.f11, self.w, self.tie)
        )
        self.left -= 2 * len(sel)
        self.expanded += len(sel)
        return out

    def expand(self, visits: tuple[np.ndarray, ...], f10: np.ndarray, f01: np.ndarray, tie: np.ndarray) -> None:
        """Queue (or book, at leaves) the four child visits of each expanded visit."""
        node, ctx, f00, f11, w = visits
        t = self.tree
        bit = np.left_shift(1, t.depth[node] + 1)
        kid = np.stack([t.left[node], t.right[node], t.left[node], t.right[node]], axis=1).ravel()  # (4n,)
        kctx = np.stack([ctx, ctx, ctx | bit, ctx | bit], axis=1).ravel()
        k00 = np.stack([f00, f00, f01, f10], axis=1).ravel()
        k11 = np.stack([f10, f01, f11, f11], axis=1).ravel()
        kw = np.repeat(w / 2, 4)
        leaf = t.size[kid] == 1
        np.add.at(self.credit, kid[leaf], (k11 - k00)[leaf] * kw[leaf])
        inner = ~leaf
        self.node = np.concatenate([self.node, kid[inner]])
        self.ctx = np.concatenate([self.ctx, kctx[inner]])
        self.f00 = np.concatenate([self.f00, k00[inner]])
        self.f11 = np.concatenate([self.f11, k11[inner]])
        self.w = np.concatenate([self.w, kw[inner]])
        self.tie = np.concatenate([self.tie, tie[: len(kid)][inner]])

    def values(self) -> np.ndarray:
        """Book the waiting visits, share each node's credit with its leaves: (C,H,W) float64."""
        t = self.tree
        total = self.credit.copy()
        np.add.at(total, self.node, (self.f11 - self.f00) * self.w)
        for ids in t.levels[1:]:  # parents before children
            p = t.parent[ids]
            total[ids] += total[p] * t.size[ids] / t.size[p]
        leaves = np.flatnonzero(t.size == 1)
        out = np.zeros(t.shape)
        h, w, c = t.lo[leaves].T
        out[c, h, w] = total[leaves]
        return out


def visit_masks(tree: BisectionTree, node: np.ndarray, ctx: np.ndarray) -> np.ndarray:
    """The masks m00 ∪ left and m00 ∪ right of n visits, pairs adjacent: (2n, 1, H, W) bool when
    every box spans all channels, else (2n, C, H, W).

    m00 is the union of the present siblings of the node's ancestors: with the child's box, at
    most depth + 1 disjoint boxes. Boxes that span the channels are painted on an (H, W) plane
    with a difference array (+1/−1 at the four corners, then a running sum along H and W);
    boxes inside one pixel's channels (the deepest levels) are set element by element."""
    t = tree
    n, dmax = len(node), int(t.depth[node].max())
    anc = np.empty((n, dmax + 1), np.int64)  # anc[:, l]: the node and its ancestors (root repeated)
    anc[:, 0] = node
    for j in range(1, dmax + 1):
        anc[:, j] = np.where(t.depth[anc[:, j - 1]] > 0, t.parent[anc[:, j - 1]], anc[:, j - 1])
    depth = t.depth[anc]
    on = ((ctx[:, None] >> depth) & 1).astype(bool) & (depth > 0)  # sibling of anc[:, l] present
    sib = np.where(on, t.sibling(np.maximum(anc, 1)), 0)
    child = np.stack([t.left[node], t.right[node]], axis=1).ravel()  # (2n,)
    lo = np.concatenate([t.lo[child][:, None], np.repeat(np.where(on[..., None], t.lo[sib], 0), 2, axis=0)], axis=1)
    hi = np.concatenate([t.hi[child][:, None], np.repeat(np.where(on[..., None], t.hi[sib], 0), 2, axis=0)], axis=1)
    c, h, w = t.shape
    present = (hi - lo).prod(axis=2) > 0  # (2n, L+1): absent siblings are empty boxes
    spans = present & (lo[..., 2] == 0) & (hi[..., 2] == c)
    q, slot = np.nonzero(spans)
    (h0, w0, _), (h1, w1, _) = lo[q, slot].T, hi[q, slot].T
    plane = np.zeros((2 * n, h + 1, w + 1), np.int8)
    for rows, cols, sign in ((h0, w0, 1), (h0, w1, -1), (h1, w0, -1), (h1, w1, 1)):
        np.add.at(plane, (q, rows, cols), sign)
    np.cumsum(plane, axis=1, out=plane)
    np.cumsum(plane, axis=2, out=plane)
    mask = (plane[:, None, :h, :w] != 0)  # (2n, 1, H, W)
    q, slot = np.nonzero(present & ~spans)
    if len(q) == 0:
        return mask
    mask = np.repeat(mask, c, axis=1)
    inside = (np.arange(c) >= lo[q, slot, 2, None]) & (np.arange(c) < hi[q, slot, 2, None])  # (P, C)
    k, ch = np.nonzero(inside)
    mask[q[k], ch, lo[q[k], slot[k], 0], lo[q[k], slot[k], 1]] = True
    return mask


def _scores(model: Any, queries: Any, targets: np.ndarray, per_call: int) -> np.ndarray:
    """f_t(z) of each row of a (q, C, H, W) query batch with its own target, float64 (q,)."""
    out = np.empty(len(targets))
    for s in range(0, len(targets), per_call):
        block = np.asarray(model(queries[s : s + per_call]))
        out[s : s + len(block)] = block[np.arange(len(block)), targets[s : s + per_call]]
    if not np.isfinite(out).all():
        raise NonFiniteOutputError("the model returned non-finite scores for some perturbed queries.")
    return out


class PartitionSHAP(BlackBoxExplainer):
    """Partition SHAP: Owen values of the elements over the bisection tree, within a budget.

    Args:
        n_queries: forwards per explicand, f(x) and f(x̂) included (shap's ``max_evals``; the
            full recursion may need fewer: exactly 2 + 2·min(E, ⌊(n_queries − 2)/2⌋) are spent).
        baseline: x̂, what absent elements become: ``"blur"`` (default, the toolkit's Gaussian
            blur; shap's image default is a 128×128 box blur, pass an array for it), ``"zero"``, a
            constant or an array (C,), (C,H,W), (B,C,H,W).
        seed: seeds the tie-break keys (step s draws 128 uniforms, the same for every explicand).
        queries_per_call, array_backend: see :class:`~onnxplain.blackbox.base.BlackBoxExplainer`.
            The recursion is adaptive: a step's 64 queries per explicand are one or more model
            calls of at most ``queries_per_call`` queries; the map does not depend on it.

    Values are per element (C,H,W); Σ = f(x) − f(x̂) (``completeness_gap`` ≈ 0 in float32).
    ``diagnostics``: ``expanded`` (visits expanded per explicand).
    """

    name = "partitionshap"
    budget_param = "n_queries"
    uses_baseline = True
    scores_baseline = True

    def __init__(
        self,
        n_queries: int = 2000,
        baseline: Any = "blur",
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        super().__init__(seed=seed, queries_per_call=queries_per_call, array_backend=array_backend)
        self.n_queries = check_positive_int("n_queries", n_queries, 2)
        self.baseline = Baseline.parse(baseline)

    def tie_keys(self, step: int) -> np.ndarray:
        """The 128 tie-break keys of step ``step`` (4 child visits × 32 expansions, push order)."""
        return host_rng(self.seed, "partitionshap", step).random(4 * VISITS_PER_STEP)

    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        c, h, w = (int(d) for d in input_shape)
        return 2 + 2 * min(internal_visits((c, h, w)), (self.n_queries - 2) // 2)

    def _setup(self, batch: np.ndarray) -> BisectionTree:
        c, h, w = batch.shape[1:]
        return bisection_tree((int(c), int(h), int(w)))

    def _attribute(self, call: Call) -> Attribution:
        tree: BisectionTree = call.setup
        assert call.baseline is not None and call.baseline_scores is not None
        ops = call.ops
        evals = self.queries_per_explicand(tree.shape) - 2
        states = [OwenState(tree, call.baseline_scores[i], call.scores[i], evals) for i in range(call.n)]
        x, base = ops.asarray(call.x), ops.asarray(call.baseline)
        per_call = preferred_batch_size(call.model, call.queries_per_call)
        buffer = ops.empty((call.n * 2 * VISITS_PER_STEP, *tree.shape))  # one step of every explicand
        step = 0
        while True:
            picked = [s.select() for s in states]
            counts = np.array([2 * len(p) for p in picked])
            if counts.sum() == 0:
                break
            visits = [s.take(p) for s, p in zip(states, picked, strict=True)]
            queries = buffer[: int(counts.sum())]
            offsets = np.concatenate([[0], np.cumsum(counts)])
            for i, v in enumerate(visits):
                if counts[i]:
                    mask = ops.asarray(visit_masks(tree, v[0], v[1]), np.bool_)
                    ops.select_into(mask, x[i], base[i], queries[offsets[i] : offsets[i + 1]])
            f = _scores(call.model, queries, np.repeat(call.targets, counts), per_call)
            tie = self.tie_keys(step)
            for i, v in enumerate(visits):
                if counts[i]:
                    pair = f[offsets[i] : offsets[i + 1]]
                    states[i].expand(v, pair[0::2], pair[1::2], tie)  # f10, f01
            step += 1
        return Attribution(
            np.stack([s.values() for s in states]),
            diagnostics={"expanded": np.array([s.expanded for s in states], np.int64)},
        )
