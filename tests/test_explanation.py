"""Explanation: batch indexing, saliency reductions, completeness gap, save/load round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from onnxplain import Explanation
from onnxplain.errors import InvalidInputError


def make(batch: bool = True) -> Explanation:
    rng = np.random.default_rng(0)
    attributions = rng.normal(size=(3, 2, 4, 5) if batch else (2, 4, 5)).astype(np.float32)
    return Explanation(
        attributions=attributions,
        method="geex",
        target=np.array([1, 0, 2]) if batch else 1,
        score=np.array([0.9, 0.8, 0.7]) if batch else 0.9,
        baseline_score=np.array([0.1, 0.2, 0.3]) if batch else 0.1,
        params={"seed": 0, "sigma": 0.1, "shape": (1, 2)},
        n_queries=300,
        seconds=2.0,
        model_seconds=1.5,
        diagnostics={"r2": np.array([0.5, 0.6, 0.7]), "note": "x"},
    )


def test_batch_indexing() -> None:
    exp = make()
    assert exp.is_batch and len(exp) == 3
    one = exp[1]
    assert not one.is_batch and one.target == 0 and one.score == pytest.approx(0.8)
    assert one.diagnostics == {"r2": pytest.approx(0.6), "note": "x"}
    np.testing.assert_array_equal(one.attributions, exp.attributions[1])


def test_completeness_gap_per_explicand() -> None:
    exp = make()
    expected = exp.attributions.reshape(3, -1).sum(1) - (exp.score - exp.baseline_score)
    np.testing.assert_allclose(exp.completeness_gap, expected, rtol=1e-6)
    assert exp[2].completeness_gap == pytest.approx(expected[2], rel=1e-6)
    assert Explanation(np.zeros((1, 2, 2)), "rise", 0, 0.5).completeness_gap is None


def test_saliency_reductions() -> None:
    exp = make(batch=False)
    a = exp.attributions
    np.testing.assert_allclose(exp.saliency("mean"), a.mean(0))
    np.testing.assert_allclose(exp.saliency("sum"), a.sum(0))
    np.testing.assert_allclose(exp.saliency("abs"), np.abs(a).mean(0))
    assert make().saliency().shape == (3, 4, 5)
    with pytest.raises(InvalidInputError):
        exp.saliency("max")  # type: ignore[arg-type]


@pytest.mark.parametrize("batch", [True, False])
def test_save_load_round_trip(tmp_path, batch: bool) -> None:
    exp = make(batch)
    path = exp.save(tmp_path / "exp")
    assert path.suffix == ".npz" and [p.name for p in tmp_path.iterdir()] == [path.name]
    back = Explanation.load(path)
    np.testing.assert_array_equal(back.attributions, exp.attributions)
    assert back.method == exp.method and back.n_queries == 300 and back.params["seed"] == 0
    np.testing.assert_allclose(back.score, exp.score)
    np.testing.assert_array_equal(back.target, exp.target)
    np.testing.assert_allclose(back.completeness_gap, exp.completeness_gap, rtol=1e-6)
    json.dumps(back.to_dict())


def test_load_rejects_other_files(tmp_path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(InvalidInputError, match="not an onnxplain explanation"):
        Explanation.load(bad)
