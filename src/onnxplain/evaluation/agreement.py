"""Agreement between two attribution maps (e.g. a black-box map and its white-box reference).

All measures work on channel-reduced maps (signed channel mean by default, the same reduction
the AOPC ranks on), one value per explicand, averaged over the batch:

* ``spearman``: Spearman rank correlation of the two maps over the H·W pixels (average ranks
  for ties); 1 for the same ordering, −1 for the reversed one, ≈ 0 for unrelated maps;
* ``top{p}%``: top-k intersection |T_k(a) ∩ T_k(b)| / k of the k = p % highest pixels
  (signed by default, so "most supportive"; ``topk_by="abs"`` ranks by magnitude);
* ``cosine``: cosine similarity of the signed maps.

A measure that is undefined for an explicand (a constant map for Spearman, a zero map for the
cosine) is NaN for that explicand and left out of the mean.

Scales (``pool``, :func:`agreement_scales`): at 224×224 the pixel-level ranks of two good maps
barely correlate (the maps agree on regions, not on single pixels, and their noise is
independent), so agreement is also measured on maps average-pooled to 28×28 and 14×14 cells.
Pooling applies only along an axis longer than the cell count; a map of at most that size is
compared as it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata

from onnxplain.checks import check_probability, check_real_array
from onnxplain.errors import InvalidInputError
from onnxplain.evaluation.result import MetricResult
from onnxplain.explanation import Explanation, Reduce

DEFAULT_FRACTIONS = (0.01, 0.05, 0.10)
DEFAULT_SCALES: tuple[int | None, ...] = (None, 28, 14)
"""Pixels, then maps pooled to 28×28 and 14×14 cells."""
SCALE_MEASURES = ("spearman", "top10%")


def reduce_maps(m: Any, reduce: Reduce = "mean") -> np.ndarray:
    """A map or batch of maps as (B, H, W) float64.

    An :class:`Explanation` is reduced with ``.saliency(reduce)``. Arrays: (H,W) is one map,
    (C,H,W) one explicand's channels, (B,C,H,W) a batch (pass a batch of 2-D maps as (B,1,H,W)).
    """
    if isinstance(m, Explanation):
        s = np.asarray(m.saliency(reduce), dtype=np.float64)
        return s[None] if s.ndim == 2 else s
    a = check_real_array("a map", m)
    if a.ndim == 2:
        return a[None]
    if a.ndim not in (3, 4):
        raise InvalidInputError(f"a map must be (H,W), (C,H,W) or (B,C,H,W), got shape {a.shape}.")
    if a.ndim == 3:
        a = a[None]
    if reduce == "mean":
        return a.mean(axis=1)
    if reduce == "sum":
        return a.sum(axis=1)
    if reduce == "abs":
        return np.abs(a).mean(axis=1)
    raise InvalidInputError(f"reduce must be 'mean', 'sum' or 'abs', not {reduce!r}.")


def _area_weights(n: int, cells: int) -> np.ndarray:
    """(cells, n) averaging matrix: row i is the mean over [i·n/cells, (i+1)·n/cells).

    A pixel cut by a cell border counts in each cell by the fraction it covers, so every row sums
    to 1 and, when ``cells`` divides ``n``, row i is the plain mean of its n/cells pixels.
    """
    edges = np.arange(cells + 1) * (n / cells)
    lo, hi = edges[:-1, None], edges[1:, None]
    pixels = np.arange(n)[None, :]
    overlap = np.clip(np.minimum(hi, pixels + 1) - np.maximum(lo, pixels), 0.0, None)
    return overlap / (n / cells)


def pool_maps(maps: np.ndarray, cells: int) -> np.ndarray:
    """(B,H,W) maps average-pooled to at most ``cells`` × ``cells`` (axes ≤ ``cells`` are kept).

    Exact area averaging (:func:`_area_weights`) along each longer axis: for a 224×224 map and
    28 cells, each value is the mean of an 8×8 block.
    """
    if not isinstance(cells, (int, np.integer)) or cells < 1:
        raise InvalidInputError(f"the pooled size must be a positive integer, got {cells!r}.")
    out = np.asarray(maps, dtype=np.float64)
    _, h, w = out.shape
    if h > cells:
        out = np.einsum("ih,bhw->biw", _area_weights(h, int(cells)), out)
    if w > cells:
        out = np.einsum("jw,biw->bij", _area_weights(w, int(cells)), out)
    return out


def scale_label(cells: int | None) -> str:
    """``"pixels"`` or ``"28×28"``."""
    return "pixels" if cells is None else f"{cells}×{cells}"


def _row_corr(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = u - u.mean(axis=1, keepdims=True)
    v = v - v.mean(axis=1, keepdims=True)
    den = np.sqrt((u * u).sum(axis=1) * (v * v).sum(axis=1))
    num = (u * v).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def spearman_rows(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair of two (B, n) arrays (average ranks for ties)."""
    return _row_corr(rankdata(u, axis=1), rankdata(v, axis=1))


def topk_intersection(u: np.ndarray, v: np.ndarray, k: int, *, by_abs: bool = False) -> np.ndarray:
    """|top-k(u) ∩ top-k(v)| / k per row (descending, ties broken by the lower index)."""
    if by_abs:
        u, v = np.abs(u), np.abs(v)
    top_u = np.argsort(-u, axis=1, kind="stable")[:, :k]
    top_v = np.argsort(-v, axis=1, kind="stable")[:, :k]
    hit = np.zeros(u.shape, dtype=bool)
    np.put_along_axis(hit, top_u, True, axis=1)
    return np.take_along_axis(hit, top_v, axis=1).sum(axis=1) / k


def agreement(
    a: Any,
    b: Any,
    *,
    reduce: Reduce = "mean",
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
    topk_by: Literal["signed", "abs"] = "signed",
    pool: int | None = None,
) -> dict[str, MetricResult]:
    """Spearman, top-k intersections and cosine between maps ``a`` and ``b`` (all higher is better).

    Args:
        a, b: maps of the same spatial size: Explanations or arrays (see :func:`reduce_maps`);
            a single map is compared with each map of a batch if the other is a batch.
        reduce: channel reduction applied to both (signed ``"mean"`` by default).
        fractions: shares of the H·W pixels for the top-k intersections.
        topk_by: rank the top-k by the signed value (default) or by magnitude.
        pool: compare the maps average-pooled to ``pool`` × ``pool`` cells (:func:`pool_maps`);
            None compares pixels.

    Returns:
        ``{"spearman": ..., "top1%": ..., "top5%": ..., "top10%": ..., "cosine": ...}``.
    """
    ma, mb = reduce_maps(a, reduce), reduce_maps(b, reduce)
    if ma.shape[1:] != mb.shape[1:]:
        raise InvalidInputError(f"the maps differ in size: {ma.shape[1:]} vs {mb.shape[1:]}.")
    if len(ma) != len(mb):
        if 1 not in (len(ma), len(mb)):
            raise InvalidInputError(f"batches of {len(ma)} and {len(mb)} maps cannot be compared.")
        n = max(len(ma), len(mb))
        ma, mb = np.broadcast_to(ma, (n,) + ma.shape[1:]), np.broadcast_to(mb, (n,) + mb.shape[1:])
    if not (np.isfinite(ma).all() and np.isfinite(mb).all()):
        raise InvalidInputError("the maps contain NaN or infinite values.")
    if topk_by not in ("signed", "abs"):
        raise InvalidInputError(f"topk_by must be 'signed' or 'abs', not {topk_by!r}.")
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence) or not fractions:
        raise InvalidInputError(f"fractions must be a non-empty sequence of shares in (0, 1], got {fractions!r}.")
    fractions = tuple(check_probability("fractions", f) for f in fractions)
    if pool is not None:
        ma, mb = pool_maps(ma, pool), pool_maps(mb, pool)
    u = ma.reshape(len(ma), -1)
    v = mb.reshape(len(mb), -1)
    n_pixels = u.shape[1]
    per_image: dict[str, np.ndarray] = {"spearman": spearman_rows(u, v)}
    ks: dict[str, int] = {}
    for f in fractions:
        key = f"top{100 * f:g}%"
        ks[key] = max(1, int(round(f * n_pixels)))
        per_image[key] = topk_intersection(u, v, ks[key], by_abs=topk_by == "abs")
    norms = np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_image["cosine"] = np.where(norms > 0, (u * v).sum(axis=1) / norms, np.nan)
    out: dict[str, MetricResult] = {}
    for name, values in per_image.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            score = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        params: dict[str, Any] = {
            "reduce": reduce,
            "scale": scale_label(pool),
            "compared_shape": tuple(ma.shape[1:]),
            "n_images": len(u),
            "n_undefined": int(np.isnan(values).sum()),
        }
        if name in ks:
            params.update(k=ks[name], topk_by=topk_by)
        out[name] = MetricResult(name=name, score=score, higher_is_better=True, per_image=values, params=params)
    return out


def agreement_scales(
    a: Any,
    b: Any,
    *,
    scales: tuple[int | None, ...] = DEFAULT_SCALES,
    measures: tuple[str, ...] = SCALE_MEASURES,
    reduce: Reduce = "mean",
) -> dict[str, dict[str, MetricResult]]:
    """``{scale label: {measure: MetricResult}}``: :func:`agreement` at pixels and pooled sizes.

    Default: Spearman and top-10 % intersection at pixels, 28×28 and 14×14
    (``{"pixels": {...}, "28×28": {...}, "14×14": {...}}``).
    """
    out: dict[str, dict[str, MetricResult]] = {}
    for cells in scales:
        res = agreement(a, b, reduce=reduce, pool=cells)
        unknown = [m for m in measures if m not in res]
        if unknown:
            raise InvalidInputError(f"unknown agreement measure(s) {unknown}; choose from {', '.join(res)}.")
        out[scale_label(cells)] = {m: res[m] for m in measures}
    return out
