"""A real KServe-v2 server on 127.0.0.1 (onnxplain.serving over ONNX Runtime) with injectable faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from onnxplain.demo import demo_onnx_path
from onnxplain.serving import V2Server
from tests.remote.remote_helpers import FaultyServer


@pytest.fixture(scope="session")
def demo_path() -> Path:
    return demo_onnx_path()


@pytest.fixture(scope="module")
def server(demo_path: Path):
    with FaultyServer(demo_path, name="mnist", max_batch_size=16, threads=1) as srv:
        yield srv


@pytest.fixture()
def fresh(server: FaultyServer) -> FaultyServer:
    server.reset()
    yield server
    server.reset()


@pytest.fixture(scope="module")
def json_server(demo_path: Path):
    """A server without the binary tensor extension (and without a batch limit)."""
    with V2Server(demo_path, name="mnist", binary=False, threads=1) as srv:
        yield srv
