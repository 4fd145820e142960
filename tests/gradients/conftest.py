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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The models here are tiny: one intra-op thread is faster and fair to a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
