"""Fixtures of the dataset-runner tests: one shared Ray cluster, the images, the model spec."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from onnxplain.demo import demo_onnx_path
from onnxplain.distributed import OnnxModelSpec
from tests.distributed.dataset_helpers import twelve_digits


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray cluster (not local mode) for the whole session: 2 CPUs, no dashboard."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    return twelve_digits()


@pytest.fixture(scope="session")
def model_spec() -> OnnxModelSpec:
    return OnnxModelSpec(str(demo_onnx_path()), batch_size=32)
