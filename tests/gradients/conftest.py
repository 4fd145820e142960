"""Fixtures of the white-box tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.gradients.gradient_helpers import make_cnn


@pytest.fixture
def cnn() -> nn.Module:
    return make_cnn()


@pytest.fixture
def cnn64() -> nn.Module:
    return make_cnn(torch.float64)
