"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the suite's measured batch sizes (``onnxplain.models.autobatch``) out of the user's
    ``~/.cache``: every test, and every process a test starts, uses a temporary cache directory."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ONNXPLAIN_CACHE_DIR", str(tmp_path_factory.mktemp("onnxplain-cache")))
    yield
    patch.undo()
