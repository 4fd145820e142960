"""The GEEX paper's MNIST CNN (its `cnn.py` architecture, re-derived): two 5×5 convolutions
with 6 and 16 channels, each followed by ReLU and 2×2 max-pooling, then dense 120-84-10."""

from __future__ import annotations

import torch
from torch import nn


class MnistCNN(nn.Module):
    """Takes normalised (N,1,28,28) input, returns (N,10) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
