"""Coarse-grid perturbations shared by Sobol attribution (Fel et al., NeurIPS 2021) and HSIC
attribution (Novello et al., NeurIPS 2022).

A design point X ∈ [0,1]^d (d = g², cells numbered row-major) is a g×g grid of mask values. It
becomes a pixel mask shared by all channels, ``M = R_h · X · R_wᵀ`` (:class:`GridUpsampler`):

- ``"nearest"`` (default): output pixel i takes cell ⌊(i + ½)·g/H⌋, as xplique (TF2 nearest) and,
  whenever H and W are multiples of g, the Torch reference (torch's legacy ``nearest`` takes
  ⌊i·g/H⌋ and shifts cells by at most one pixel otherwise);
- ``"bilinear"``: half-pixel centres with clamped edges, as the TF reference (``tf.image.resize``).

and a query through the perturbation function (:class:`GridPerturbation`), with x̂ the baseline:

- ``"inpainting"``: z = M⊙x + (1 − M)⊙x̂, x̂ = 0 by default (the papers' default);
- ``"blurring"``: the same blend with a blurred x̂ (the toolkit's Gaussian ``"blur"`` baseline,
  kernel 31, σ 5, unless ``"blur(k,σ)"`` is given; the references use ``cv2.blur``, a 10×10 box);
- ``"amplitude"``: z = x⊙(M − ½)·σ_a, the references' multiplicative form (their docstrings say
  x + (M − ½)·σ_a, but the code multiplies).

Each is affine in M, z = start + M⊙step, which is how :class:`GridQueries` writes the queries.
The g×g index map is finally resized to H×W bicubically (:func:`upsample_indices`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from onnxplain.baselines import Baseline
from onnxplain.blackbox.base import Call
from onnxplain.blackbox.sampling import block_seed_sequence
from onnxplain.checks import check_choice, check_positive_float
from onnxplain.errors import InvalidInputError
from onnxplain.filters import bicubic_operator, bilinear_operator, nearest_operator

PERTURBATIONS: tuple[str, ...] = ("inpainting", "blurring", "amplitude")
MASK_UPSAMPLING: tuple[str, ...] = ("nearest", "bilinear")


class GridPerturbation:
    """A validated perturbation function and its baseline (see the module docstring).

    ``baseline`` None means the default of the perturbation: 0 for inpainting, ``"blur"`` for
    blurring; amplitude takes none (it is refused there rather than silently ignored).
    """

    def __init__(self, perturbation: str, baseline: Any, amplitude_sigma: float) -> None:
        self.kind = check_choice("perturbation", perturbation, PERTURBATIONS)
        self.amplitude_sigma = check_positive_float("amplitude_sigma", amplitude_sigma)
        if self.kind == "amplitude":
            if baseline is not None:
                raise InvalidInputError(
                    "the amplitude perturbation x⊙(M − ½)·σ uses no baseline; give none."
                )
            self.baseline = Baseline("zero")
        elif self.kind == "blurring":
            self.baseline = Baseline.parse("blur" if baseline is None else baseline)
            if self.baseline.kind != "blur":
                raise InvalidInputError(
                    "the blurring perturbation blends x with a blurred x: baseline must be 'blur' or "
                    f"'blur(size,sigma)', not {baseline!r} (the 'inpainting' perturbation takes other baselines)."
                )
        else:
            self.baseline = Baseline.parse(0.0 if baseline is None else baseline)

    def params(self) -> dict[str, Any]:
        """What ``Explanation.params`` records about the perturbation."""
        if self.kind == "amplitude":
            return {"perturbation": "amplitude", "baseline": None, "amplitude_sigma": self.amplitude_sigma}
        return {"perturbation": self.kind, "baseline": self.baseline.describe()}

    def affine(self, x: np.ndarray, baseline: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(start, step) with z = start + M⊙step, both (B,C,H,W) float32."""
        if self.kind == "amplitude":
            step = (x * np.float32(self.amplitude_sigma)).astype(np.float32)
            return (-0.5 * step).astype(np.float32), step
        assert baseline is not None
        return baseline, (x - baseline).astype(np.float32)


def check_grid(grid: int, height: int, width: int) -> None:
    """A g×g grid needs at least one pixel per cell along each side."""
    if grid > min(height, width):
        raise InvalidInputError(f"grid {grid} is finer than the {height}×{width} image.")


class GridUpsampler:
    """Mask up-sampling of (m, g, g) grids to (m, 1, H, W): ``M = R_h · X · R_wᵀ``."""

    def __init__(self, grid: int, height: int, width: int, mode: str) -> None:
        mode = check_choice("mask_upsampling", mode, MASK_UPSAMPLING)
        if mode == "nearest":
            r_h, r_w = nearest_operator(grid, height), nearest_operator(grid, width)
        else:
            r_h, r_w = bilinear_operator(grid, height, "clamp"), bilinear_operator(grid, width, "clamp")
        self.grid, self.height, self.width, self.mode = grid, height, width, mode
        self.r_h = r_h.astype(np.float32)  # (H, g)
        self.r_w_t = np.ascontiguousarray(r_w.T, dtype=np.float32)  # (g, W)


def upsample_indices(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """(B, g, g) index maps resized to (B, 1, H, W) float64 by :func:`~onnxplain.filters.bicubic_operator`
    (cv2 ``INTER_CUBIC`` / torch ``bicubic``: Keys a = −0.75, half-pixel centres, edges repeated),
    as both references do. Non-negative indices may dip slightly below 0 near strong edges
    (negative lobes of the kernel); a map whose size is the grid's is returned unchanged."""
    g = scores.shape[-1]
    up = bicubic_operator(g, height) @ scores @ bicubic_operator(g, width).T
    return up[:, None]


class GridQueries:
    """Writing grid-design queries z = start + (R_h · X · R_wᵀ)⊙step for every explicand.

    Subclasses draw the design block (``draw`` returns a tuple whose first item is the (m, g, g)
    float32 grids on the ops' device) and consume the scores.
    """

    n: int

    def __init__(self, call: Call, perturbation: GridPerturbation, upsampler: GridUpsampler) -> None:
        ops = call.ops
        start, step = perturbation.affine(call.x, call.baseline)
        self.ops, self.up = ops, upsampler
        self.start = ops.asarray(start)[:, None]  # (B, 1, C, H, W)
        self.step = ops.asarray(step)[:, None]  # (B, 1, C, H, W)
        self.zero_start = not np.any(start)  # the default zero baseline adds nothing
        self.r_h = ops.asarray(upsampler.r_h)
        self.r_w_t = ops.asarray(upsampler.r_w_t)

    def write(self, block: tuple[Any, ...], out: Any) -> None:
        grids = block[0]
        masks = self.r_h @ grids @ self.r_w_t  # (m, H, W)
        self.ops.mul_into(masks.reshape(1, -1, 1, self.up.height, self.up.width), self.step, out)
        if not self.zero_start:
            out += self.start


# -- seeded quasi-Monte-Carlo designs ------------------------------------------------------------


def design_generator(seed: int, stream: str) -> np.random.Generator:
    """The generator that scrambles (or draws) an explanation's whole design: block 0 of ``stream``."""
    return np.random.default_rng(block_seed_sequence(seed, stream, 0))


def qmc_engine(kind: str, dim: int, seed: int, stream: str, scramble: bool = True) -> Any:
    """A seeded ``scipy.stats.qmc`` engine: ``"sobol"`` (LP-τ, Owen-scrambled or plain) or ``"lhs"``
    (Latin hypercube with points jittered inside their strata)."""
    from scipy.stats import qmc

    gen = design_generator(seed, stream)
    if kind == "sobol":
        cls, kwargs = qmc.Sobol, {"scramble": scramble}
    else:
        cls, kwargs = qmc.LatinHypercube, {}
    try:
        return cls(dim, rng=gen, **kwargs)
    except TypeError:  # scipy < 1.15 names the generator ``seed``
        return cls(dim, seed=gen, **kwargs)


def sobol_rows(engine: Any, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of the Sobol sequence of ``engine``, (stop − start, dim) float64.

    Regenerated from the engine's fixed scrambling (reset + fast-forward), so the design is never
    held whole; scipy's warning that a non-power-of-2 count loses the balance properties is
    silenced here because the rows are slices of a power-of-2 design.
    """
    engine.reset()
    if start:
        engine.fast_forward(start)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The balance properties of Sobol")
        return engine.random(stop - start)
