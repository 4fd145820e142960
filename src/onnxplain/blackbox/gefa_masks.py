"""GEFA's presence masks: seeded, block by block (Cai, Ardoin & Wunder, ICML 2025).

A pair of queries is drawn per presence level α ∈ (0, 1): a mask ``m`` ∈ {0,1}^(H×W) with
P(m_i = 1 | α) ≈ α, and its complement ``1 − m`` at level ``1 − α`` (antithetic pair). How
:class:`GefaMasks` draws them, with the reference code's choices (caiy0220/GEFA @85b5ca8,
``gefa/gefa.py``) named where they differ:

1. **α** (:meth:`GefaMasks.alphas`): ``"stratified"``, pair j of P at α = (j + u)/P (unbiased);
   ``"grid"``, the reference's fixed nodes k/(g+1), k = 1…g, pair j at node j mod g. A grid is a
   quadrature of ∫₀¹ dγ, biased (3-pixel AND game: mean_k (k/12)² = 0.3194 instead of ⅓). The
   pairs beyond the last full cycle take nodes j mod g (``"cycle"``) or, as the reference, a
   random subset of the nodes (``"random"``; the reference's ``torch.randperm`` is unseeded,
   ours comes from the seed).
2. **Noise field** (:meth:`GefaMasks.noise_field`): U[0,1) noise of (H+k−1)×(W+k−1) pixels,
   correlated with a k-tap Gaussian (torchvision ``GaussianBlur`` taps) and cropped to H×W, i.e.
   the *valid* part of the blur: a stationary field, as the reference. Without smoothing: the
   raw H×W noise.
3. **Rank transform** (:func:`rank_count`, :func:`smallest_k`): the field is replaced by its
   per-mask ranks spread over [0, 1), and thresholded at α: m = the K pixels of lowest field
   value. ``"exact"``: rank r ↦ (r + U_r)/d, so K = ⌊αd⌋ + Bernoulli(frac(αd)) and E[K] = αd.
   ``"reference"``: r ↦ r/(d−1) + U_r/d, the reference's ``get_ranked_pseudo_uniform``, for which
   E[K] ≈ α(d − 1) (P(m_i = 1) ≈ α(1 − 1/d): negligible at 224², a bias on small inputs). Only K
   depends on the U_r (through the one rank at the threshold), so no sort of the whole transform
   is needed: one U per mask decides K. ``"none"``: i.i.d. Bernoulli(α) masks m_i = [U_i < α]
   (the reference without smoothing). A smoothed field thresholded without ranks would not give
   P(m_i = 1) = α, so smoothing needs a rank transform.
4. **Rejection** of empty and full masks (``reject``, the reference's ``_mask_path_overlay``):
   a rejected (α, m) is replaced by a fresh draw of both from the α law (the reference drops it
   and moves on along its α sequence; both give accepted pairs the law ∝ P(α)·P(accept | α)).
   Harmless at image size, a bias on small inputs (3-pixel AND game: φ̂ = 0).

Block ``k`` (pairs ``first … first + count − 1``) comes from the generator
``ops.rng(seed, "gefa", k)`` alone, drawn in a fixed order (``count`` α uniforms; then either
``count`` rank uniforms and the ``count`` noise fields, or the i.i.d. noise; then the redraws of
rejection, in rounds), so any block can be re-drawn on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from onnxplain.blackbox.sampling import Ops, block_seed_sequence
from onnxplain.filters import filter_operator, gaussian_taps

AlphaLaw = Literal["stratified", "grid"]
Remainder = Literal["cycle", "random"]
RankTransform = Literal["exact", "reference", "none"]

REMAINDER_KEY = 2**31 - 1
"""Block number of the seed sequence that orders the grid nodes of the last, incomplete cycle."""

ALPHA_EPS = 2.0**-30
"""α is kept in [ε, 1 − ε]: (j + u)/P can round to 0 or 1 (probability ~2⁻⁵³), where w = 1/0."""

MAX_REDRAW_ROUNDS = 1000
"""Rounds of redraws after which rejection gives up (each round accepts ≥ ⅓ of the candidates
for d ≥ 2, so this is never reached in practice)."""


def auto_smoothing(height: int, width: int) -> tuple[int, float] | None:
    """The reference ImageNet config's kernel (51, σ 11 at 299²) scaled by min(H, W)/299.

    The size is the nearest odd integer (224² → (39, 8.24); 28² → (5, 1.03)); ``None`` (no
    smoothing) when that is below 3 taps.
    """
    scale = min(height, width) / 299.0
    size = 2 * round((51.0 * scale - 1.0) / 2.0) + 1
    return None if size < 3 else (int(size), 11.0 * scale)


def count_law(alpha: np.ndarray, d: int, kind: RankTransform) -> tuple[np.ndarray, np.ndarray]:
    """The law of K = |{r : u_r < α}|, the pixels a rank-transformed mask keeps: K = s + Bernoulli(p).

    ``"exact"``: u_r = (r + U_r)/d, so every r < ⌊αd⌋ counts and r = ⌊αd⌋ counts iff
    U_r < frac(αd): s = ⌊αd⌋, p = frac(αd), E[K] = αd. ``"reference"``: u_r = r/(d−1) + U_r/d
    (increasing in r: consecutive ranks are 1/(d−1) apart and U_r/d < 1/d); r counts surely when
    r ≤ α(d−1) − (d−1)/d, never when r ≥ α(d−1), and the one rank r_b in between iff
    U_{r_b} < d(α − r_b/(d−1)). Returns (s, p), float64 (P,) each.
    """
    alpha = np.asarray(alpha, np.float64)
    if kind == "exact":
        s = np.floor(alpha * d)
        return s, alpha * d - s
    if d == 1:  # linspace(0, 1, 1) = [0]: u_0 = U_0
        return np.zeros_like(alpha), alpha
    a = alpha * (d - 1)
    s = np.floor(a - (d - 1) / d) + 1.0  # ranks 0 … s − 1 always count
    return s, np.where(s < a, np.clip(d * (alpha - s / (d - 1)), 0.0, 1.0), 0.0)


def rank_count(alpha: np.ndarray, d: int, v: np.ndarray, kind: RankTransform) -> np.ndarray:
    """K per mask from :func:`count_law` and ``v``, the U of the threshold rank: K = s + [v < p]."""
    s, p = count_law(alpha, d, kind)
    return (s + (np.asarray(v, np.float64) < p)).astype(np.int64)


def smallest_k(ops: Ops, field: Any, k: np.ndarray) -> Any:
    """(P, d) float32 0/1: ones at the ``k[n]`` smallest values of row ``n`` (ties: lower index first)."""
    if ops.name == "numpy":
        return _smallest_k_numpy(field, np.asarray(k, np.int64))
    return _smallest_k_torch(ops, field, np.asarray(k, np.int64))


def _smallest_k_numpy(field: np.ndarray, k: np.ndarray) -> np.ndarray:
    rows = np.arange(len(field))
    thr = np.sort(field, axis=1)[rows, np.maximum(k - 1, 0)][:, None]  # the k-th smallest value
    mask = field < thr
    take = (field == thr) & (k > 0)[:, None]
    need = k - mask.sum(axis=1)  # how many of the values equal to thr belong to the mask
    tied = np.flatnonzero(take.sum(axis=1) != need)
    if tied.size:  # float32 ties at the threshold: keep the first ones
        sub = take[tied]
        take[tied] = sub & (np.cumsum(sub, axis=1) <= need[tied, None])
    return (mask | take).astype(np.float32)


def _smallest_k_torch(ops: Any, field: Any, k: np.ndarray) -> Any:
    torch = ops.torch
    kk = ops.index(k)[:, None]
    thr = torch.sort(field, dim=1).values.gather(1, (kk - 1).clamp(min=0))
    mask = field < thr
    take = (field == thr) & (kk > 0)
    need = kk - mask.sum(dim=1, keepdim=True)
    tied = (take.sum(dim=1, keepdim=True) != need)[:, 0]
    if bool(tied.any()):
        sub = take[tied]
        take[tied] = sub & (torch.cumsum(sub.to(torch.int64), dim=1) <= need[tied])
    return (mask | take).to(torch.float32)


@dataclass
class MaskBlock:
    """The pairs of one block: ``masks`` (P, d) float32 0/1 on the device (the complements are
    ``1 − masks`` at ``1 − alpha``), ``alpha`` (P,) float64, ``sizes`` |m| (P,) int64, and how
    many candidates rejection replaced."""

    masks: Any
    alpha: np.ndarray
    sizes: np.ndarray
    redrawn: int = 0


class GefaMasks:
    """The mask law of one GEFA explanation for H×W images and ``n_pairs`` antithetic pairs."""

    def __init__(
        self,
        height: int,
        width: int,
        n_pairs: int,
        *,
        smoothing: tuple[int, float] | None,
        rank: RankTransform,
        alpha: AlphaLaw,
        grid_points: int,
        remainder: Remainder,
        reject: bool,
        seed: int,
    ) -> None:
        self.height, self.width, self.d, self.n_pairs = height, width, height * width, n_pairs
        self.smoothing, self.rank, self.alpha, self.reject, self.seed = smoothing, rank, alpha, reject, seed
        self.grid_points, self.remainder = grid_points, remainder
        perm_rng = np.random.default_rng(block_seed_sequence(seed, "gefa", REMAINDER_KEY))
        self.remainder_nodes = perm_rng.permutation(grid_points)
        self.operators: tuple[np.ndarray, np.ndarray] | None = None
        self.half = 0 if smoothing is None else smoothing[0] // 2
        if smoothing is not None:
            taps, half = gaussian_taps(*smoothing), self.half
            # valid correlation: rows half … half+H−1 of the filter on the padded length
            oh = filter_operator(height + 2 * half, taps)[half : half + height]  # (H, H + k − 1)
            ow = filter_operator(width + 2 * half, taps)[half : half + width]  # (W, W + k − 1)
            # stored transposed, as right factors: (H + k − 1, H) and (W + k − 1, W)
            self.operators = (np.ascontiguousarray(oh.T, np.float32), np.ascontiguousarray(ow.T, np.float32))
        self._device_ops: dict[tuple[str, str], tuple[Any, Any]] = {}

    # -- α --------------------------------------------------------------------------------------
    def alphas(self, u: np.ndarray, first: int) -> np.ndarray:
        """α of pairs ``first … first + len(u) − 1`` (``u``: one U[0,1) each), float64."""
        j = np.arange(first, first + len(u))
        if self.alpha == "stratified":
            return np.clip((j + np.asarray(u, np.float64)) / self.n_pairs, ALPHA_EPS, 1.0 - ALPHA_EPS)
        g = self.grid_points
        node = j % g
        if self.remainder == "random":
            full = (self.n_pairs // g) * g
            node = np.where(j >= full, self.remainder_nodes[np.clip(j - full, 0, g - 1)], node)
        return (node + 1.0) / (g + 1.0)

    def redraw_alphas(self, u: np.ndarray) -> np.ndarray:
        """α of replacement candidates: a fresh draw from the α law (uniform, or a uniform node)."""
        u = np.asarray(u, np.float64)
        if self.alpha == "stratified":
            return np.clip(u, ALPHA_EPS, 1.0 - ALPHA_EPS)
        node = np.minimum(np.floor(u * self.grid_points), self.grid_points - 1)
        return (node + 1.0) / (self.grid_points + 1.0)

    def control_mean(self, alpha: np.ndarray) -> np.ndarray:
        """E[h·w_i(m, α) | α] per pair, h = |m|/d − ½: the control variate's known mean, (P,).

        For pixels exchangeable given |m| = K (exactly so without smoothing), E[w_i | K] =
        (K/d − α)/(α(1 − α)), so the mean is E[(K/d − ½)(K/d − α)]/(α(1 − α)) over the law of K:
        1/d for i.i.d. masks (K ∼ Bin(d, α)); for rank masks K = s + Bernoulli(p)
        (:func:`count_law`), O(1/(d²α(1 − α))). The complement (1 − m, 1 − α) has the same value.
        Rejection of empty/full masks is not accounted for (it biases the estimate anyway).
        """
        alpha = np.asarray(alpha, np.float64)
        d = self.d
        if self.rank == "none":
            return np.full_like(alpha, 1.0 / d)
        s, p = count_law(alpha, d, self.rank)
        lo = (s / d - 0.5) * (s / d - alpha)
        hi = ((s + 1) / d - 0.5) * ((s + 1) / d - alpha)
        return ((1.0 - p) * lo + p * hi) / (alpha * (1.0 - alpha))

    # -- masks ----------------------------------------------------------------------------------
    def noise_field(self, ops: Ops, rng: Any, count: int) -> Any:
        """(count, d) float32: U[0,1) noise, blurred over its valid part when smoothing is on."""
        if self.operators is None:
            return ops.random(rng, (count, self.d))
        oh_t, ow_t = self._operators_on(ops)
        h, w, hp, wp = self.height, self.width, self.height + 2 * self.half, self.width + 2 * self.half
        noise = ops.random(rng, (count, hp, wp))
        # O_h · U · O_wᵀ as two flat GEMMs (a broadcast 2-D @ 3-D matmul is several times slower)
        t = noise.reshape(count * hp, wp) @ ow_t  # along the width        (count·Hp, W)
        t = t.reshape(count, hp, w).swapaxes(1, 2).reshape(count * w, hp) @ oh_t  # (count·W, H)
        return t.reshape(count, w, h).swapaxes(1, 2).reshape(count, self.d)  # (count, H·W)

    def draw_masks(self, ops: Ops, rng: Any, alpha: np.ndarray) -> tuple[Any, np.ndarray]:
        """Masks at levels ``alpha`` and their sizes: ((P, d) float32, (P,) int64)."""
        count = len(alpha)
        if self.rank == "none":
            u = ops.random(rng, (count, self.d))
            masks = ops.asarray(u < ops.asarray(alpha[:, None], np.float64))  # m_i = [U_i < α]
            return masks, np.rint(ops.to_numpy(masks.sum(1))).astype(np.int64)
        sizes = rank_count(alpha, self.d, ops.uniform(rng, count), self.rank)
        return smallest_k(ops, self.noise_field(ops, rng, count), sizes), sizes

    def block(self, ops: Ops, k: int, first: int, count: int) -> MaskBlock:
        """Pairs ``first … first + count − 1``, drawn from block ``k``'s generator."""
        rng = ops.rng(self.seed, "gefa", k)
        alpha = self.alphas(ops.uniform(rng, count), first)
        masks, sizes = self.draw_masks(ops, rng, alpha)
        redrawn = self._reject_extremes(ops, rng, alpha, masks, sizes) if self.reject else 0
        return MaskBlock(masks, alpha, sizes, redrawn)

    def _reject_extremes(self, ops: Ops, rng: Any, alpha: np.ndarray, masks: Any, sizes: np.ndarray) -> int:
        """Replace (in place) every empty or full mask and its α by a fresh draw; the count replaced."""
        redrawn = 0
        for _ in range(MAX_REDRAW_ROUNDS):
            bad = np.flatnonzero((sizes == 0) | (sizes == self.d))
            if bad.size == 0:
                return redrawn
            redrawn += bad.size
            alpha[bad] = self.redraw_alphas(ops.uniform(rng, bad.size))
            new_masks, new_sizes = self.draw_masks(ops, rng, alpha[bad])
            masks[ops.index(bad)] = new_masks
            sizes[bad] = new_sizes
        raise RuntimeError(f"GEFA drew only empty or full masks for {MAX_REDRAW_ROUNDS} rounds.")

    def _operators_on(self, ops: Ops) -> tuple[Any, Any]:
        key = (ops.name, str(ops.device))
        if key not in self._device_ops:
            assert self.operators is not None
            self._device_ops[key] = (ops.asarray(self.operators[0]), ops.asarray(self.operators[1]))
        return self._device_ops[key]
