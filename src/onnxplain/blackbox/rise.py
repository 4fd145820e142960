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

from onnxplain.baselines import Baseline
from onnxplain.blackbox.base import Attribution, BlackBoxExplainer, Call
from onnxplain.blackbox.sampling import Ops
from onnxplain.checks import check_positive_int, check_probability
from onnxplain.errors import InvalidInputError
from onnxplain.filters import bilinear_operator


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


class RiseQueries:
    """The masked queries ``M ⊙ x + (1 − M) ⊙ x̂`` of one explanation and the running ``Σ_i f(z_i) M_i``."""

    def __init__(self, rise: RISE, call: Call, masks: RiseMasks) -> None:
        ops = call.ops
        assert call.baseline is not None
        self.n, self.ops, self.masks = rise.n_masks, ops, masks
        self.r_h, self.r_w = ops.asarray(masks.r_h), ops.asarray(masks.r_w)
        self.start = ops.asarray(call.baseline)[:, None]
        self.step = ops.asarray(call.x - call.baseline)[:, None]
        self.zero_start = not np.any(call.baseline)
        self.acc = ops.zeros64((call.n, masks.height * masks.width))

    def draw(self, k: int, lo: int, hi: int) -> Any:
        return self.masks.block(self.ops, k, hi - lo, self.r_h, self.r_w)

    def write(self, block: Any, out: Any) -> None:
        self.ops.mul_into(block[None], self.step, out)
        if not self.zero_start:  # the default black baseline adds nothing
            out += self.start

    def consume(self, block: Any, scores: np.ndarray) -> None:
        flat = block.reshape(len(block), -1)
        weights = self.ops.asarray(scores)
        for i in range(len(self.acc)):  # one product per explicand: same BLAS path whatever B is
            self.acc[i] += weights[i] @ flat


class RISE(BlackBoxExplainer):
    """RISE saliency from N random smooth masks (Petsiuk et al. 2018).

    Args:
        n_masks: N, masked forwards per explicand (``Explanation.n_queries`` adds one
            forward on x per explicand).
        grid: s, cells per side of the random grid (7 as xplique/TorchRay; the reference
            notebooks use 8 on 224×224).
        p_keep: probability that a grid cell keeps the image (0.5; the reference used 0.1).
        baseline: what a masked-out pixel becomes: a constant (0.0), ``"zero"``, ``"blur"`` or
            an array of shape (C,), (C,H,W) or (B,C,H,W); z = M ⊙ x + (1 − M) ⊙ x̂.
        seed, queries_per_call, array_backend: see :class:`~onnxplain.blackbox.base.BlackBoxExplainer`.

    The map is per pixel; ``attributions`` repeats it over the C channels. It is an expected
    score (≈ f-scale offset plus a modulation), not a signed contribution: no completeness.
    """

    name = "rise"
    signed_map = False
    budget_param = "n_masks"
    uses_baseline = True

    def __init__(
        self,
        n_masks: int = 4000,
        grid: int = 7,
        p_keep: float = 0.5,
        baseline: Any = 0.0,
        *,
        seed: int = 0,
        queries_per_call: int | None = None,
        array_backend: str = "auto",
    ) -> None:
        super().__init__(seed=seed, queries_per_call=queries_per_call, array_backend=array_backend)
        self.n_masks = check_positive_int("n_masks", n_masks)
        self.grid = check_positive_int("grid", grid)
        self.p_keep = check_probability("p_keep", p_keep)
        self.baseline = Baseline.parse(baseline)

    def queries_per_explicand(self, input_shape: tuple[int, ...]) -> int:
        return self.n_masks + 1  # f(x) and the masked queries

    def params(self) -> dict[str, Any]:
        return {**super().params(), "grid": self.grid, "p_keep": self.p_keep}

    def _setup(self, batch: np.ndarray) -> RiseMasks:
        h, w = batch.shape[2:]
        if self.grid > min(h, w):
            raise InvalidInputError(f"grid {self.grid} is finer than the {h}×{w} image.")
        return RiseMasks(h, w, self.grid, self.p_keep, self.seed)

    def _attribute(self, call: Call) -> Attribution:
        b, _, h, w = call.x.shape
        queries = RiseQueries(self, call, call.setup)
        call.run(queries)
        # Eq. 6: S = Σ_i f(z_i) M_i / (N · p_keep)                         (B, 1, H, W)
        saliency = call.ops.to_numpy(queries.acc).reshape(b, 1, h, w) / (self.n_masks * self.p_keep)
        return Attribution(np.broadcast_to(saliency, call.x.shape))
