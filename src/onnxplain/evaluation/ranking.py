"""Shared machinery of the perturbation-curve metrics: inputs, rankings, substrates, the query stream.

A curve metric ranks features by an attribution map and changes them cumulatively, ``n_k``
features at curve point k. For every explicand b and point k the perturbed image is

    z_{b,k} = where(rank_b < n_k, source_b, start_b)

with ``rank_b`` the position of each feature in the descending order of the map. Deletion starts
from x and takes values from the substrate; insertion does the reverse. All (b, k) pairs are
enumerated in one stream and built chunk by chunk with array operations, so peak memory is one
chunk of images regardless of the number of points or explicands.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from onnxplain.checks import check_real_array, check_targets
from onnxplain.errors import InvalidInputError
from onnxplain.explanation import Explanation
from onnxplain.models.base import QueryModel, as_batch, check_budget, predict, preferred_batch_size

ChannelReduce = Literal["mean", "sum", "abs"]
RankMode = Literal["pixel", "dimension"]


def image_batch(model: QueryModel, x: Any) -> tuple[np.ndarray, bool]:
    """``x`` as a float32 (B,C,H,W) batch for ``model``; image models only."""
    if not isinstance(model, QueryModel):
        raise InvalidInputError(
            f"model must be a QueryModel (OnnxModel, TorchModel, RemoteModel, FunctionModel, …), got {type(model).__name__}."
        )
    if len(tuple(model.input_shape)) != 3:
        raise InvalidInputError(
            f"image metrics need a model with (C, H, W) input, this one takes {tuple(model.input_shape)}."
        )
    batch, single = as_batch(x, model.input_shape)
    if not np.isfinite(batch).all():
        raise InvalidInputError("the explicand contains NaN or infinite values.")
    return batch, single


def attribution_batch(attributions: Any, batch_shape: tuple[int, ...], single: bool) -> np.ndarray:
    """Attributions as float64 (B, C', H, W) with C' = 1 or C, checked against the explicands.

    Accepted: an :class:`Explanation`, or an array of shape (C,H,W), (1,H,W), (H,W) for one
    explicand and (B,C,H,W), (B,1,H,W), (B,H,W) for a batch. One-channel maps (RISE, LIME)
    broadcast over the channels.
    """
    if isinstance(attributions, Explanation):
        attributions = attributions.attributions
    a = check_real_array("attributions", attributions)
    b, c, h, w = batch_shape
    if single:
        if a.shape in ((c, h, w), (1, h, w)):
            a = a[None]
        elif a.shape == (h, w):
            a = a[None, None]
        elif a.shape in ((1, c, h, w), (1, 1, h, w)):
            pass
        else:
            raise InvalidInputError(
                f"attributions of shape {a.shape} do not fit an explicand of shape {(c, h, w)}."
            )
    else:
        if a.shape == (b, h, w):
            a = a[:, None]
        elif a.shape not in ((b, c, h, w), (b, 1, h, w)):
            raise InvalidInputError(
                f"attributions of shape {a.shape} do not fit a batch of shape {(b, c, h, w)}."
            )
    if not np.isfinite(a).all():
        raise InvalidInputError("the attributions contain NaN or infinite values.")
    return a


def resolve_targets(
    model: QueryModel, batch: np.ndarray, target: Any, attributions: Any, *, then: int = 0
) -> tuple[np.ndarray, int]:
    """Explained classes (B,) and the number of queries spent finding them.

    ``target=None`` takes the Explanation's target when ``attributions`` is one, else the model's
    top class on x (one query per explicand). ``then`` is the number of queries the metric makes
    afterwards: a metric calls this once every option is checked, and the model's budget is
    checked here for the whole metric, before its first query.
    """
    if target is None and isinstance(attributions, Explanation):
        target = attributions.target
    t = check_targets(target, len(batch), model.num_classes)
    check_budget(model, int(then) + (0 if t is not None else len(batch)))
    if t is not None:
        return t, 0
    t, _ = predict(model, batch)
    return t, len(batch)


def ranking_keys(a: np.ndarray, channels: int, mode: RankMode, reduce: ChannelReduce) -> np.ndarray:
    """Per-explicand keys to sort, (B, n_features).

    ``pixel``: the channel-reduced map (signed mean by default, as the GEEX reference's
    ``unified_expl``), H·W features. ``dimension``: the map broadcast to all C channels and ranked
    jointly over C·H·W (LA's corrected evaluation), one-channel maps repeated per channel.
    """
    if mode == "pixel":
        if reduce == "mean":
            m = a.mean(axis=1)
        elif reduce == "sum":
            m = a.sum(axis=1)
        elif reduce == "abs":
            m = np.abs(a).mean(axis=1)
        else:
            raise InvalidInputError(f"reduce must be 'mean', 'sum' or 'abs', not {reduce!r}.")
        return m.reshape(len(a), -1)
    if mode == "dimension":
        if reduce not in ("mean", "sum", "abs"):
            raise InvalidInputError(f"reduce must be 'mean', 'sum' or 'abs', not {reduce!r}.")
        full = np.broadcast_to(a, (a.shape[0], channels) + a.shape[2:])
        if reduce == "abs":
            full = np.abs(full)
        return full.reshape(len(a), -1)
    raise InvalidInputError(f"mode must be 'pixel' or 'dimension', not {mode!r}.")


def descending_ranks(keys: np.ndarray) -> np.ndarray:
    """rank[b, i] = position of feature i in the descending order of keys[b] (ties: lower index first).

    A stable sort of the negated keys, i.e. the order of Python's ``sorted(..., reverse=True)``.
    """
    order = np.argsort(-keys, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(keys.shape[1])[None].repeat(len(keys), 0), axis=1)
    return ranks


def step_counts(n_features: int, step: int, n_points: int | None = None) -> np.ndarray:
    """n_k = min(k·step, n_features) for k = 0..L with L = ⌈n_features/step⌉ (or n_points−1)."""
    if not isinstance(step, (int, np.integer)) or step <= 0:
        raise InvalidInputError(f"step must be a positive integer, got {step!r}.")
    n_steps = -(-n_features // int(step)) if n_points is None else n_points - 1
    return np.minimum(np.arange(n_steps + 1, dtype=np.int64) * int(step), n_features)


def perturbation_curves(
    model: QueryModel,
    batch: np.ndarray,
    ranks: np.ndarray,
    counts: np.ndarray,
    start: np.ndarray,
    source: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int | None = None,
) -> np.ndarray:
    """Model scores of every (explicand, point) image, (B, L+1) float64.

    ``ranks`` is (B, H·W) for pixel mode (a changed pixel changes all channels) or (B, C·H·W) for
    dimension mode. Point k of explicand b takes the ``counts[k]`` top-ranked features from
    ``source[b]`` and the rest from ``start[b]``. Queries are streamed in chunks of
    ``preferred_batch_size(model, batch_size)`` images; no loop over single images or points.
    """
    b, c, h, w = batch.shape
    n_points = len(counts)
    total = b * n_points
    chunk = preferred_batch_size(model, batch_size)
    if ranks.shape[1] not in (h * w, c * h * w):
        raise InvalidInputError(f"ranks cover {ranks.shape[1]} features, expected H·W or C·H·W.")
    mask_shape = (-1, 1, h, w) if ranks.shape[1] == h * w else (-1, c, h, w)
    scores = np.empty(total, dtype=np.float64)
    for lo in range(0, total, chunk):
        pair = np.arange(lo, min(lo + chunk, total))
        img, point = np.divmod(pair, n_points)
        take = (ranks[img] < counts[point][:, None]).reshape(mask_shape)
        images = np.where(take, source[img], start[img])
        out = np.asarray(model(images))
        scores[lo : lo + len(pair)] = out[np.arange(len(pair)), targets[img]]
    return scores.reshape(b, n_points)


def trapezoid_auc(curves: np.ndarray) -> np.ndarray:
    """RISE's AUC on x ∈ [0, 1]: (Σ s − s₀/2 − s_L/2)/L along the last axis."""
    n = curves.shape[-1]
    if n < 2:
        raise InvalidInputError("a curve needs at least two points for an AUC.")
    return (curves.sum(axis=-1) - curves[..., 0] / 2 - curves[..., -1] / 2) / (n - 1)
