"""Occlusion (Zeiler & Fergus, ECCV 2014), with Captum's semantics (``captum.attr.Occlusion``).

A window of shape (w_C, w_H, w_W) slides over the (C,H,W) explicand with strides (s_C, s_H, s_W):
along each axis d it starts at k·s_d for k = 0 … n_d − 1 with

    n_d = ⌈(D_d − w_d) / s_d⌉ + 1                 (the last window may overhang: it is cropped)

and the query of window W_k is x with W_k replaced by the baseline x̂. The attribution of an
element i is the mean score drop over the windows covering it,

    A_i = (1/n_i) Σ_{k: i ∈ W_k} [f(x) − f(x with W_k ← x̂)],      n_i = #{k: i ∈ W_k},

signed and unnormalised, with the explicand's full (C,H,W) shape. Cost: 1 + Π_d n_d forwards.
Windows are enumerated in blocks of 64 (never all masks in memory); the sum is accumulated per
axis-separable window (Σ_k Δ_k 1_C ⊗ 1_H ⊗ 1_W as a product of small matrices).

Deliberate differences from Captum: none in the map (parity tested to 1e-5); ``window="auto"``
and ``n_queries`` (a budget that picks the stride) are additions. xplique's Occlusion sums
instead of averaging and skips overhanging windows: not offered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.blackbox.base import Attribution, BlackBoxExplainer, Call
from onnxplain.checks import check_positive_int
from onnxplain.errors import InvalidInputError

AUTO_FRACTION = 14
"""``window="auto"`` covers all channels and ⌈H/14⌉ × ⌈W/14⌉ pixels: 16×16 at 224² and 2×2 at
28² (with the automatic half-window stride, 27² = 729 windows at either size)."""


def _triple(name: str, spec: Any) -> tuple[int | None, int, int]:
    """An int (square, all channels), (h, w) (all channels) or (c, h, w); None = all channels."""
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        dims: tuple[Any, ...] = (None, spec, spec)
    elif isinstance(spec, (tuple, list)) and len(spec) in (2, 3):
        dims = tuple(spec) if len(spec) == 3 else (None, *spec)
    else:
        raise InvalidInputError(f"{name} must be 'auto', an int, (h, w) or (c, h, w), got {spec!r}.")
    for d in dims:
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1):
            raise InvalidInputError(f"{name} must hold positive integers, got {spec!r}.")
    return (None if dims[0] is None else int(dims[0]), int(dims[1]), int(dims[2]))


def window_counts(size: int, window: int, stride: int) -> int:
    """n_d = ⌈(D − w)/s⌉ + 1 window positions along one axis (Captum's ``shift_counts``)."""
    return math.ceil((size - window) / stride) + 1


@dataclass(frozen=True)
class OcclusionPlan:
    """The windows of one (C,H,W) shape: window and stride per axis, positions per axis."""

    shape: tuple[int, int, int]
    window: tuple[int, int, int]
    strides: tuple[int, int, int]

    @property
    def counts(self) -> tuple[int, int, int]:
        return tuple(window_counts(d, w, s) for d, w, s in zip(self.shape, self.window, self.strides, strict=True))  # type: ignore[return-value]

    @property
    def n_windows(self) -> int:
        return int(np.prod(self.counts))

    def inside(self, axis: int, index: np.ndarray) -> np.ndarray:
        """(n, D_axis) bool: whether element j of the axis lies in window position ``index``."""
        start = index * self.strides[axis]
        j = np.arange(self.shape[axis])
        return (j[None, :] >= start[:, None]) & (j[None, :] < start[:, None] + self.window[axis])

    def coverage(self) -> np.ndarray:
        """n_i, the number of windows covering each element: (C,H,W) float64 (all ≥ 1)."""
        per_axis = [self.inside(a, np.arange(n)).sum(axis=0).astype(np.float64) for a, n in enumerate(self.counts)]
        return per_axis[0][:, None, None] * per_axis[1][None, :, None] * per_axis[2][None, None, :]


class OcclusionQueries:
    """Window block k: the explicand with windows lo..hi occluded, and the running Σ_k Δ_k 1_{W_k}."""

    def __init__(self, plan: OcclusionPlan, call: Call) -> None:
        ops = call.ops
        assert call.baseline is not None
        self.plan, self.ops, self.n = plan, ops, plan.n_windows
        self.x = ops.asarray(call.x)
        self.baseline = ops.asarray(call.baseline)
        self.fx = call.scores  # f(x) (B,)
        c, h, w = plan.shape
        self.acc = ops.zeros64((call.n, c * h, w))

    def draw(self, k: int, lo: int, hi: int) -> tuple[Any, Any, Any]:
        """Per-axis indicators (n, C), (n, H), (n, W) of windows lo..hi (bool, on the ops' device)."""
        index = np.unravel_index(np.arange(lo, hi), self.plan.counts)
        return tuple(self.ops.asarray(self.plan.inside(a, index[a]), np.bool_) for a in range(3))  # type: ignore[return-value]

    def write(self, block: tuple[Any, Any, Any], out: Any) -> None:
        ic, ih, iw = block
        mask = ic[:, :, None, None] & ih[:, None, :, None] & iw[:, None, None, :]  # (n, C, H, W)
        for i in range(len(out)):
            self.ops.select_into(mask, self.baseline[i], self.x[i], out[i])  # W_k ← x̂

    def consume(self, block: tuple[Any, Any, Any], scores: np.ndarray) -> None:
        ic, ih, iw = (self.ops.to64(a) for a in block)
        drop = self.ops.to64(self.fx[:, None] - scores)  # Δ_k = f(x) − f(z_k)   (B, n)
        n = len(scores[0])
        for i in range(len(self.acc)):
            rows = (drop[i][:, None, None] * ic[:, :, None] * ih[:, None, :]).reshape(n, -1)  # (n, C·H)
            self.acc[i] += rows.T @ iw  # Σ_k Δ_k 1_C ⊗ 1_H ⊗ 1_W     (C·H, W)


class Occlusion(BlackBoxExplainer):
    """Occlusion: the mean score drop when sliding windows that cover an element are replaced by
    the baseline (Captum's ``Occlusion`` semantics).

    Args:
        n_queries: optional query budget per explicand. Given, the spatial stride is the
            smallest s ≤ window (the same on H and W) with 1 + (number of windows) ≤ n_queries,
            so the map is as fine as the budget allows (refused, before any query, when even
            s = window needs more); ``None``: ``strides`` decide. Either way the explanation
            spends exactly 1 + Π_d n_d queries, recorded with the resolved window and strides.
        window: ``"auto"`` (all channels × ⌈H/14⌉ × ⌈W/14⌉), an int k (all channels × k × k),
            (h, w) (all channels) or (c, h, w). Must fit in the explicand.
        strides: ``"auto"`` (channel stride = channel window, spatial stride = ⌊window/2⌋, at
            least 1) or as ``window``; a stride may not exceed its window unless the window spans
            the whole axis (Captum's rule). Give ``n_queries`` or ``strides``, not both.
        baseline: what an occluded element becomes: a constant (0.0, Captum's default),
            ``"zero"``, ``"blur"``, or an array of shape (C,), (C,H,W) or (B,C,H,W).
        seed, queries_per_call, array_backend: see :class:`~onnxplain.blackbox.base.BlackBoxExplainer`
            (occlusion draws nothing at random: the seed is recorded only).

    ``params`` records ``window``, ``strides`` and ``n_windows`` as resolved for the explicand.
    """

    name = "occlusion"
    budget_param = "n_queries"
    uses_baseline = True

    def __init__(
        self,
        n_queries: int | None = None,
        window: Any = "auto",
        strides: Any = "auto",
        baseline: Any = 0.0,
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        super().__init__(seed=seed, queries_per_call=queries_per_call, array_backend=array_backend)
        self.n_queries = None if n_queries is None else check_positive_int("n_queries", n_queries, 2)
        self.window = window if isinstance(window, str) and window == "auto" else _triple("window", window)
        self.strides = strides if isinstance(strides, str) and strides == "auto" else _triple("strides", strides)
        if self.n_queries is not None and self.strides != "auto":
            raise InvalidInputError("give n_queries (the stride is then chosen to fit it) or strides, not both.")
        self.baseline = Baseline.parse(baseline)

    @property
    def budget(self) -> int | None:  # type: ignore[override]
        """``n_queries`` (an upper bound), or None when the strides decide the cost."""
        return self.n_queries

    # -- the windows of one shape -------------------------------------------------------------------
    def plan(self, input_shape: tuple[int, ...]) -> OcclusionPlan:
        """The window, strides and positions used for explicands of shape (C,H,W)."""
        if len(input_shape) != 3:
            raise InvalidInputError(f"occlusion needs (C,H,W) explicands, got shape {tuple(input_shape)}.")
        c, h, w = (int(d) for d in input_shape)
        if self.window == "auto":
            window = (c, -(-h // AUTO_FRACTION), -(-w // AUTO_FRACTION))
        else:
            window = (c if self.window[0] is None else self.window[0], self.window[1], self.window[2])
        if any(wd > d for wd, d in zip(window, (c, h, w), strict=True)):
            raise InvalidInputError(f"the occlusion window {window} does not fit in explicands of shape {(c, h, w)}.")
        if self.n_queries is not None:
            return self._fit_budget((c, h, w), window, self.n_queries)
        if self.strides == "auto":
            strides = (window[0], max(1, window[1] // 2), max(1, window[2] // 2))
        else:
            strides = (window[0] if self.strides[0] is None else self.strides[0], self.strides[1], self.strides[2])
        for d, wd, s in zip((c, h, w), window, strides, strict=True):
            if s > wd and wd < d:
                raise InvalidInputError(
                    f"stride {s} exceeds its window {wd} on an axis the window does not span: elements would be skipped."
                )
        return OcclusionPlan((c, h, w), window, strides)

    @staticmethod
    def _fit_budget(shape: tuple[int, int, int], window: tuple[int, int, int], n_queries: int) -> OcclusionPlan:
        """The finest common spatial stride s (1 ≤ s ≤ window) with 1 + Π n_d ≤ n_queries."""
        for s in range(1, max(window[1], window[2]) + 1):
            plan = OcclusionPlan(shape, window, (window[0], min(s, window[1]), min(s, window[2])))
            if 1 + plan.n_windows <= n_queries:
                return plan
        raise InvalidInputError(
            f"n_queries={n_queries} is too small for occlusion windows {window} on {shape}: even a stride of one "
            f"window needs {1 + plan.n_windows} queries (use a larger window or budget)."
        )

    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        return 1 + self.plan(input_shape).n_windows  # f(x) and one query per window

    def _setup(self, batch: np.ndarray) -> OcclusionPlan:
        return self.plan(tuple(batch.shape[1:]))

    def _attribute(self, call: Call) -> Attribution:
        plan: OcclusionPlan = call.setup
        queries = OcclusionQueries(plan, call)
        call.run(queries)
        total = call.ops.to_numpy(queries.acc).reshape(call.x.shape)  # Σ_{k ∋ i} Δ_k     (B, C, H, W)
        return Attribution(
            total / plan.coverage()[None],  # A_i = mean over the n_i windows covering i
            params={"window": list(plan.window), "strides": list(plan.strides), "n_windows": plan.n_windows},
        )
