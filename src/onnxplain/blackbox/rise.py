"""RISE: randomized input sampling for explanation (Petsiuk, Das & Saenko, BMVC 2018).

Saliency of pixel p = E[f(M ⊙ x + (1 − M) ⊙ x̂) | M_p = 1], estimated as

    S = Σ_i f(z_i) · M_i / (N · p_keep)       (RISE Eq. 6, with E[M_p] = p_keep)

over N random masks M_i: an s×s grid of Bernoulli(p_keep) cells, bilinearly up-sampled to
(s+1)·⌈H/s⌉ × (s+1)·⌈W/s⌉ (skimage ``resize(order=1, mode="reflect")`` semantics), then cropped
to H×W at a random shift within one cell, so masks are smooth and not aligned to the grid.
The masks are generated block by block from the seed (never all in memory) and the same mask
set is used for every explicand.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from onnxplain.blackbox._common import (
    BaselineSpec,
    Clock,
    build_explanation,
    check_baseline_spec,
    check_batch_size,
    check_budget,
    check_choice,
    check_positive_int,
    check_seed,
    describe_baseline,
    prepare,
    query_explicands,
    resolve_baseline,
    stream,
)
from onnxplain.blackbox.sampling import Ops, bilinear_operator, select_backend
from onnxplain.errors import InvalidInputError
from onnxplain.explanation import Explanation
from onnxplain.models.base import QueryModel, Target


class RiseMasks:
    """The RISE mask generator for one image size; ``block(ops, k, n)`` draws mask block ``k``.

    Per mask: grid (s, s) ~ Bernoulli(p_keep); shifts dy ∈ [0, ⌈H/s⌉), dx ∈ [0, ⌈W/s⌉);
    mask = R_h[dy:dy+H] · grid · R_w[dx:dx+W]ᵀ with R the order-1 resize operators, i.e. the
    up-sampled grid cropped at the shift, computed for the whole block with batched matmuls.
    """

    def __init__(self, height: int, width: int, grid: int, p_keep: float, seed: int) -> None:
        self.height, self.width, self.grid, self.p_keep, self.seed = height, width, grid, p_keep, seed
        self.cell_h = math.ceil(height / grid)
        self.cell_w = math.ceil(width / grid)
        self.r_h = bilinear_operator(grid, (grid + 1) * self.cell_h).astype(np.float32)
        self.r_w = bilinear_operator(grid, (grid + 1) * self.cell_w).astype(np.float32)

    def block(self, ops: Ops, k: int, n: int, r_h: Any = None, r_w: Any = None) -> Any:
        """Masks of block ``k`` (n of them), (n, 1, H, W) float32 in [0, 1] on the ops' device."""
        rng = ops.rng(self.seed, "rise", k)
        grids = ops.bernoulli(rng, self.p_keep, (n, self.grid, self.grid))
        dy = ops.integers(rng, self.cell_h, n)
        dx = ops.integers(rng, self.cell_w, n)
        r_h = ops.asarray(self.r_h) if r_h is None else r_h
        r_w = ops.asarray(self.r_w) if r_w is None else r_w
        rows = ops.index(np.arange(self.height))[None, :] + dy[:, None]  # (n, H)
        cols = ops.index(np.arange(self.width))[None, :] + dx[:, None]  # (n, W)
        left = r_h[rows]  # (n, H, s)
        right = r_w[cols]  # (n, W, s)
        masks = left @ grids @ right.swapaxes(1, 2)
        return masks.reshape(n, 1, self.height, self.width)


class RISE:
    """RISE saliency from N random smooth masks (Petsiuk et al. 2018).

    Args:
        n_masks: N, masked forwards per explicand (``Explanation.n_queries`` adds one
            forward on x per explicand).
        grid: s, cells per side of the random grid (7 as xplique/TorchRay; the reference
            notebooks use 8 on 224×224).
        p_keep: probability that a grid cell keeps the image (0.5; the reference used 0.1).
        baseline: what a masked-out pixel becomes: a constant (0.0), ``"zero"``, ``"blur"`` or
            an array of shape (C,H,W) or (B,C,H,W); z = M ⊙ x + (1 − M) ⊙ x̂.
        seed: seeds the masks; same masks for every explicand, identical maps whatever
            ``batch_size``.
        batch_size: queries per model call (all explicands together); default: the model's
            preferred batch size.
        backend: ``"numpy"``, ``"torch"`` (masks built on ``model.device``) or ``"auto"``.

    The map is per pixel; ``attributions`` repeats it over the C channels. It is an expected
    score (≈ f-scale offset plus a modulation), not a signed contribution: no completeness.
    """

    method = "rise"

    def __init__(
        self,
        n_masks: int = 4000,
        grid: int = 7,
        p_keep: float = 0.5,
        baseline: BaselineSpec = 0.0,
        seed: int = 0,
        batch_size: int | None = None,
        backend: str = "auto",
    ) -> None:
        self.n_masks = check_positive_int("n_masks", n_masks)
        self.grid = check_positive_int("grid", grid)
        if isinstance(p_keep, bool) or not isinstance(p_keep, (int, float)) or not 0 < p_keep <= 1:
            raise InvalidInputError(f"p_keep must be a probability in (0, 1], got {p_keep!r}.")
        self.p_keep = float(p_keep)
        self.baseline = check_baseline_spec(baseline)
        self.seed = check_seed(seed)
        self.batch_size = check_batch_size(batch_size)
        self.backend = check_choice("backend", backend, ("auto", "numpy", "torch"))

    def explain(self, model: QueryModel, x: Any, target: Target = None) -> Explanation:
        """Saliency of ``x`` (C,H,W) or a batch (B,C,H,W) for ``target`` (None = top class)."""
        clock = Clock(model)
        ops = select_backend(self.backend, model)
        batch, single = prepare(model, x)
        b, c, h, w = batch.shape
        if self.grid > min(h, w):
            raise InvalidInputError(f"grid {self.grid} is finer than the {h}×{w} image.")
        baseline = resolve_baseline(self.baseline, batch)
        n_total = b * (self.n_masks + 1)
        check_budget(model, n_total)
        exp = query_explicands(model, batch, single, target)
        masks = RiseMasks(h, w, self.grid, self.p_keep, self.seed)
        r_h, r_w = ops.asarray(masks.r_h), ops.asarray(masks.r_w)
        start = ops.asarray(baseline)[:, None]
        step = ops.asarray(exp.x - baseline)[:, None]
        zero_start = not np.any(baseline)
        acc = ops.zeros64((b, h * w))

        def make_block(k: int, lo: int, hi: int) -> Any:
            return masks.block(ops, k, hi - lo, r_h, r_w)

        def write_queries(block: Any, out: Any) -> None:
            ops.mul_into(block[None], step, out)
            if not zero_start:  # the default black baseline adds nothing
                out += start

        def consume(block: Any, scores: np.ndarray) -> None:
            flat = block.reshape(len(block), -1)
            weights = ops.asarray(scores)
            for i in range(b):  # one product per explicand: same BLAS path whatever B is
                acc[i] += weights[i] @ flat

        stream(ops, model, self.n_masks, exp, self.batch_size, make_block, write_queries, consume)
        sal = ops.to_numpy(acc).reshape(b, 1, h, w) / (self.n_masks * self.p_keep)
        attributions = np.ascontiguousarray(np.broadcast_to(sal, batch.shape), dtype=np.float32)
        params = {
            "n_masks": self.n_masks,
            "grid": self.grid,
            "p_keep": self.p_keep,
            "baseline": describe_baseline(self.baseline),
            "seed": self.seed,
            "backend": ops.name,
        }
        return build_explanation(self.method, exp, attributions, params, clock, n_total)
