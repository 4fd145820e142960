"""The adversarial exploration loop shared by AGI and LA, and their choice of false classes.

A *path* is one (explicand, class) pair: a targeted path climbs h(f)_t of a false class t, an
untargeted one descends h(f)_y. All paths are independent, so they are processed as flat rows in
chunks of ``batch_size`` (memory bounded by the chunk, not by B × classes), and each row's
contribution is accumulated into its explicand in a fixed order.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from onnxplain.gradients._common import Runner, gather

ClassSelection = Literal["random", "evenly_spaced", "top"]


def false_classes(
    scores: torch.Tensor, targets: torch.Tensor, k: int, selection: str, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``(image index, false class)`` with up to ``k`` classes ≠ y per explicand, image-major.

    - ``"random"``: one permutation of the K classes from ``numpy.random.default_rng(seed)``,
      the same for every explicand (the LMBTough copies re-seed per call, so every image gets the
      same classes); an explicand takes the first k entries that are not its y. This replaces
      the references' "y → y+1" substitution, which can repeat a class.
    - ``"evenly_spaced"``: classes 0, K//k, 2·K//k, … (AGI_main's ``range(0, 999, 1000//k)``),
      skipping y, so an explicand whose y is on the grid gets k − 1 classes.
    - ``"top"``: the k most probable classes other than y, in descending confidence.
    """
    n_img, n_cls = scores.shape
    y = targets.cpu().numpy()
    k = min(k, n_cls - 1)
    if selection == "random":
        perm = np.random.default_rng(seed).permutation(n_cls)
        lists = [perm[perm != y[b]][:k] for b in range(n_img)]
    elif selection == "evenly_spaced":
        grid = np.arange(k) * (n_cls // k)
        lists = [grid[grid != y[b]] for b in range(n_img)]
    elif selection == "top":
        order = torch.argsort(scores, dim=1, descending=True, stable=True).cpu().numpy()
        lists = [order[b][order[b] != y[b]][:k] for b in range(n_img)]
    else:
        raise ValueError(f"unknown class selection {selection!r}")
    img = np.concatenate([np.full(len(c), b) for b, c in enumerate(lists)]).astype(np.int64)
    cls = np.concatenate(lists).astype(np.int64)
    return torch.from_numpy(img).to(scores.device), torch.from_numpy(cls).to(scores.device)


def _add_rows(out: torch.Tensor, img: torch.Tensor, rows: torch.Tensor) -> None:
    """``out[img[r]] += rows[r]`` in row order (``img`` sorted), deterministic on every device."""
    uniq, counts = torch.unique_consecutive(img, return_counts=True)
    for b, part in zip(uniq.tolist(), torch.split(rows, counts.tolist()), strict=True):
        out[b] += part.sum(dim=0)


def explore(
    run: Runner,
    x: torch.Tensor,
    targets: torch.Tensor,
    rows_img: torch.Tensor,
    rows_cls: torch.Tensor | None,
    *,
    steps: int,
    epsilon: float,
    relative: bool,
    from_origin: bool,
    early_stop: bool,
    bounds: tuple[float, float],
    batch_size: int,
) -> torch.Tensor:
    """Σ over rows of Σ_k −∇h(f(x_k))_y ⊙ (x_{k+1} − b_k), accumulated per explicand, (B,C,H,W).

    Step of a targeted row (class t): x_{k+1} = clamp(b_k + ε ⊙ sign(∇h(f(x_k))_t), bounds);
    of an untargeted row (``rows_cls=None``): x_{k+1} = clamp(b_k − ε ⊙ sign(∇h(f(x_k))_y), bounds).
    The step base is b_k = x₀ (``from_origin``, the public AGI/LA code) or b_k = x_k (the
    cumulative path of the papers). ε is ``epsilon`` (absolute) or ``epsilon · x₀`` elementwise
    (``relative``, LA's ε = x/s). With ``early_stop`` a targeted row stops, before stepping, as
    soon as argmax f(x_k) = t. Every forward is one query per active row; a targeted step takes
    two backward passes (∇h_t, ∇h_y), an untargeted one a single backward pass.
    """
    lo, hi = bounds
    out = torch.zeros_like(x)
    targeted = rows_cls is not None
    for r0 in range(0, rows_img.shape[0], batch_size):
        img = rows_img[r0 : r0 + batch_size]
        x0 = x[img]
        y = targets[img]
        t = rows_cls[r0 : r0 + batch_size] if targeted else None
        eps = x0 * epsilon if relative else torch.full_like(x0, epsilon)
        xk = x0.clone()
        acc = torch.zeros_like(x0)
        active = torch.arange(x0.shape[0], device=x.device)
        for _ in range(steps):
            if active.numel() == 0:
                break
            xa = xk[active].detach().requires_grad_(True)
            raw, head = run.forward(xa)
            if targeted:
                ta, ya = t[active], y[active]
                keep = None
                if early_stop:
                    go = raw.detach().argmax(dim=1) != ta
                    if not bool(go.all()):
                        # rows that reached their class stop; they stay in this graph at zero weight
                        keep = go.nonzero().squeeze(1)
                        if keep.numel() == 0:
                            break
                        head, ta, ya = head[keep], ta[keep], ya[keep]
                g_t = run.grad_of(gather(head, ta), xa, xa.shape[0], retain_graph=True)
                g_y = run.grad_of(gather(head, ya), xa, xa.shape[0])
                if keep is not None:
                    g_t, g_y, active = g_t[keep], g_y[keep], active[keep]
                direction = torch.sign(g_t)
            else:
                g_y = run.grad_of(gather(head, y[active]), xa, xa.shape[0])
                direction = -torch.sign(g_y)
            base = x0[active] if from_origin else xk[active]
            new = torch.clamp(base + eps[active] * direction, lo, hi)
            acc[active] -= g_y * (new - base)
            xk[active] = new
        _add_rows(out, img, acc)
    return out
