"""Explanation infidelity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of Explanations", Def. 2.1).

    INFD(Φ, f, x) = E_I [ (Iᵀ Φ − (f(x) − f(x − I)))² ]

estimated with ``n_perturbations`` draws of I per explicand. With ``normalize=True`` (default)
the attribution is rescaled by the least-squares optimal β = E[Δ·IᵀΦ] / E[(IᵀΦ)²] before the
error is taken, so the scale of Φ has no effect (as in the port ``ABE-XAI abe/metric/infid.py``
described in ``reference/whitebox-methods.md`` §5):

    INFD = mean_i (Δ_i − β·s_i)²,  s_i = I_iᵀ Φ,  Δ_i = f(x) − f(x − I_i).

Perturbations (``perturbation=``):

* ``"subset"`` (default, the reference's "Gaussian" mode): a random ``subset_fraction`` of the
  C·H·W dimensions (H·W of 3·H·W = 1/3 for RGB in the reference) is set to clip(−noise_std·z,
  *clip*) with z ~ N(0, 1) — near-black noise in [0,1] pixel space — so I = x − x̃ there, 0 elsewhere;
* ``"gaussian"``: I = noise_std·z on every dimension (Yeh et al.'s noisy-baseline perturbation).

Randomness comes from one ``numpy.random.default_rng(seed)`` stream consumed in a fixed order
(one ``random`` call per chunk, mapped to normals by the inverse CDF), so the score does not
depend on the chunk size. The model output is used as it is (the reference scores logits).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.special import ndtri

from onnxplain.checks import (
    check_bool,
    check_bounds,
    check_choice,
    check_optional_positive_int,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_seed,
)
from onnxplain.evaluation.ranking import attribution_batch, image_batch, resolve_targets
from onnxplain.evaluation.result import MetricResult
from onnxplain.models.base import QueryModel, Target, preferred_batch_size

Perturbation = Literal["subset", "gaussian"]

_MAX_DRAWS = 1 << 24


def infidelity(
    model: QueryModel,
    x: Any,
    attributions: Any,
    *,
    target: Target = None,
    n_perturbations: int = 100,
    perturbation: Perturbation = "subset",
    noise_std: float = 0.2,
    subset_fraction: float = 1 / 3,
    clip: tuple[float, float] | None = (0.0, 1.0),
    normalize: bool = True,
    seed: int = 0,
    batch_size: int | None = None,
) -> MetricResult:
    """Infidelity of ``attributions`` (lower is better); see the module docstring for the formula.

    Args:
        model: any QueryModel; f is its output for the target class.
        x: one explicand (C,H,W) or a batch (B,C,H,W).
        attributions: map(s) of x's shape (one-channel maps broadcast) or an :class:`Explanation`.
        target: explained class(es); ``None`` = the Explanation's target, else the top class on x.
        n_perturbations: draws of I per explicand.
        perturbation: ``"subset"`` or ``"gaussian"``.
        noise_std: std of z (in model-input units).
        subset_fraction: share of dimensions perturbed by ``"subset"``.
        clip: value range of the perturbed values for ``"subset"`` (``None``: no clipping).
        normalize: rescale Φ by the optimal β (scale-invariant score); ``False`` uses Φ as is.
        seed: seed of the perturbations.
        batch_size: perturbed images per model call; default ``preferred_batch_size(model)``.
    """
    batch, single = image_batch(model, x)
    a = attribution_batch(attributions, batch.shape, single)
    n_perturbations = check_positive_int("n_perturbations", n_perturbations)
    check_choice("perturbation", perturbation, ("subset", "gaussian"))
    noise_std = check_positive_float("noise_std", noise_std)
    subset_fraction = check_probability("subset_fraction", subset_fraction)
    if clip is not None:
        clip = check_bounds(clip, "clip")
    normalize = check_bool("normalize", normalize)
    seed = check_seed(seed)
    check_optional_positive_int("batch_size", batch_size)
    b, c, h, w = batch.shape
    targets, n_target_queries = resolve_targets(model, batch, target, attributions, then=b + b * n_perturbations)
    d = c * h * w
    phi = np.broadcast_to(a, batch.shape).reshape(b, d)
    xf = batch.reshape(b, d)
    n_subset = max(1, int(round(subset_fraction * d)))

    fx = np.asarray(model(batch), dtype=np.float64)[np.arange(b), targets]
    total = b * n_perturbations
    # two float64 draws per dimension and image: cap a chunk at ~128 MB of random numbers
    chunk = max(1, min(preferred_batch_size(model, batch_size), _MAX_DRAWS // (2 * d)))
    rng = np.random.default_rng(seed)
    delta = np.empty(total)
    dots = np.empty(total)
    for lo in range(0, total, chunk):
        idx = np.arange(lo, min(lo + chunk, total))
        img = idx // n_perturbations
        u = rng.random((len(idx), 2, d))
        z = ndtri(np.clip(u[:, 0], 1e-12, 1 - 1e-12))
        if perturbation == "gaussian":
            pert = noise_std * z
        else:
            chosen = np.argpartition(u[:, 1], n_subset - 1, axis=1)[:, :n_subset]
            mask = np.zeros((len(idx), d), dtype=bool)
            np.put_along_axis(mask, chosen, True, axis=1)
            new = -noise_std * z
            if clip is not None:
                new = np.clip(new, clip[0], clip[1])
            pert = np.where(mask, xf[img] - new, 0.0)
        perturbed = (xf[img] - pert).astype(np.float32).reshape(len(idx), c, h, w)
        out = np.asarray(model(perturbed), dtype=np.float64)[np.arange(len(idx)), targets[img]]
        delta[idx] = fx[img] - out
        dots[idx] = np.einsum("nd,nd->n", pert, phi[img])
    delta = delta.reshape(b, n_perturbations)
    dots = dots.reshape(b, n_perturbations)
    if normalize:
        denom = np.mean(dots**2, axis=1)
        beta = np.divide(np.mean(delta * dots, axis=1), denom, out=np.zeros(b), where=denom > 0)
    else:
        beta = np.ones(b)
    per_image = np.mean((delta - beta[:, None] * dots) ** 2, axis=1)
    return MetricResult(
        name="infidelity",
        score=float(per_image.mean()),
        higher_is_better=False,
        per_image=per_image,
        params={
            "n_perturbations": int(n_perturbations),
            "perturbation": perturbation,
            "noise_std": float(noise_std),
            "subset_fraction": float(subset_fraction) if perturbation == "subset" else None,
            "clip": clip if perturbation == "subset" else None,
            "normalize": normalize,
            "beta": beta,
            "seed": seed,
            "targets": targets,
            "n_images": b,
        },
        n_queries=int(b + total + n_target_queries),
    )
