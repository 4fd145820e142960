"""Tiny models, images and a query recorder for the white-box tests (3×16×16, 10 classes, CPU)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from onnxplain.gradients import AGI, LA, AttEXplore, IntegratedGradients, Saliency, SmoothGrad


class Recorder(nn.Module):
    """Wraps a module and keeps a copy of every batch it is asked to score."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.net(x)

    def queries(self) -> torch.Tensor:
        return torch.cat(self.inputs)


def make_cnn(
    dtype: torch.dtype = torch.float32, seed: int = 0, classes: int = 10, smooth: bool = False
) -> nn.Module:
    """Conv–act–conv–act–pool–linear (ReLU, or Softplus when ``smooth``): any input ≥ 4 px."""
    g = torch.Generator().manual_seed(seed)
    act = nn.Softplus if smooth else nn.ReLU
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        act(),
        nn.Conv2d(6, 8, 3, padding=1),
        act(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, classes),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.6 if p.ndim > 1 else 0.2))
    return net.to(dtype).eval()


def make_linear(d: int, classes: int = 10, seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    """logits = W·vec(x) + b, for closed-form oracles."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(d, classes))
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(classes, d, generator=g) * 0.3)
        net[1].bias.copy_(torch.randn(classes, generator=g) * 0.1)
    return net.to(dtype).eval()


def images(
    n: int = 4, shape: tuple[int, int, int] = (3, 16, 16), seed: int = 0, dtype=np.float32
) -> np.ndarray:
    """Random [0,1] images with an exactly black square (x = 0) in the top-left corner."""
    x = np.random.default_rng(seed).random((n, *shape))
    x[:, :, :4, :4] = 0.0
    return x.astype(dtype)


# -- closed-form oracles on a linear softmax model (numpy, float64) ----------------------------------


def linear_parts(model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    lin = model[1]
    return lin.weight.detach().numpy().astype(np.float64), lin.bias.detach().numpy().astype(np.float64)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def grad_prob(w: np.ndarray, b: np.ndarray, x: np.ndarray, c: int) -> np.ndarray:
    """∇_x p_c(x) = p_c (w_c − Σ_j p_j w_j) for p = softmax(Wx + b)."""
    p = _softmax(w @ x + b)
    return p[c] * (w[c] - p @ w)


def adversarial_oracle(
    w: np.ndarray,
    b: np.ndarray,
    x: np.ndarray,
    y: int,
    classes: list[int | None],
    *,
    eps: np.ndarray | float,
    steps: int,
    cumulative: bool,
    early_stop: bool,
) -> tuple[np.ndarray, int]:
    """AGI/LA accumulation written out per path and step; ``None`` = untargeted. Returns (A, forwards)."""
    a = np.zeros_like(x)
    forwards = 0
    for t in classes:
        xk = x.copy()
        for _ in range(steps):
            forwards += 1
            if early_stop and t is not None and int(np.argmax(w @ xk + b)) == t:
                break
            gy = grad_prob(w, b, xk, y)
            direction = np.sign(grad_prob(w, b, xk, t)) if t is not None else -np.sign(gy)
            base = xk if cumulative else x
            new = np.clip(base + eps * direction, 0.0, 1.0)
            a += -gy * (new - base)
            xk = new
    return a, forwards


# Every white-box method at its cheapest settings, by registry name (callables take constructor options).
FAST = {
    "saliency": lambda **kw: Saliency(**kw),
    "ig": lambda **kw: IntegratedGradients(steps=4, **kw),
    "smoothgrad": lambda **kw: SmoothGrad(samples=4, **kw),
    "agi": lambda **kw: AGI(steps=2, n_classes=2, **kw),
    "attexplore": lambda **kw: AttEXplore(n_approx=2, steps=2, **kw),
    "la": lambda **kw: LA(steps=2, samples=2, **kw),
}
