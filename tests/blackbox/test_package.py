"""The black-box package: registry paths, no torch at import, JSON-safe results."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from onnxplain.blackbox import GE, GEEX, LIME, RISE
from onnxplain.explanation import Explanation
from onnxplain.registry import get_method

from .conftest import scalar_model


def test_registry_resolves_the_classes():
    assert (get_method("geex"), get_method("ge"), get_method("rise"), get_method("lime")) == (GEEX, GE, RISE, LIME)


def test_import_does_not_load_torch():
    code = "import sys, onnxplain.blackbox; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_explanations_save_and_load(tmp_path):
    model = scalar_model(lambda r: np.tanh(r.sum(axis=1) / 10), (1, 8, 8))
    x = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    for explainer in (GEEX(n_queries=64), GE(n_queries=64), RISE(n_masks=64, grid=4), LIME(n_samples=64)):
        exp = explainer.explain(model, x)
        loaded = Explanation.load(exp.save(tmp_path / explainer.name))
        np.testing.assert_array_equal(loaded.attributions, exp.attributions)
        assert loaded.params == exp.params and loaded.n_queries == exp.n_queries


def test_torch_backend_batch_equals_single_explicands():
    # The device path builds (B, q, C, H, W) queries with strided in-place writes: a batch must
    # give each explicand exactly what it gets alone.
    model = scalar_model(lambda r: np.tanh(r.sum(axis=1) / 20), (3, 12, 12))
    xs = np.random.default_rng(0).random((3, 3, 12, 12)).astype(np.float32)
    for explainer in (
        GEEX(n_queries=128, array_backend="torch"),
        GE(n_queries=128, array_backend="torch"),
        RISE(n_masks=128, grid=4, array_backend="torch"),
        LIME(n_samples=128, array_backend="torch"),
    ):
        batch = explainer.explain(model, xs, target=0).attributions
        single = np.stack([explainer.explain(model, x, target=0).attributions for x in xs])
        np.testing.assert_array_equal(batch, single)
