"""benchmarks/detector_fidelity.py: its per-detection scoring and its table, on a function detector."""

from __future__ import annotations

import numpy as np

from benchmarks import detector_fidelity as df
from onnxplain.models.detector import DetectorModel, explain_detections
from tests.models.test_detector_model import REGION, region_detector


def test_scoring_and_table_on_a_known_detector() -> None:
    photo = np.random.default_rng(0).uniform(0.3, 1.0, (3, 32, 32)).astype(np.float32)
    model = DetectorModel(region_detector(), photo, targets=[0])
    method = df.make_method("rise", 300, 0)
    assert method.grid == 16  # PHOTO_SETTINGS applied
    [exp] = explain_detections(df.make_method("rise", 300, 0, settings=False), model)
    row = df.score_detection(model, exp, 0, step=16)
    assert row["beats_random"] and row["deletion_auc"] < row["random_auc"]
    x1, y1, x2, y2 = REGION
    assert row["box_share"] == (x2 - x1) * (y2 - y1) / (32 * 32)
    assert 0.0 <= row["positive_share_in_box"] <= 1.0
    rows = [{"detector": "d", "photo": "p", "method": "rise", **row, "efficiency": 0.5, "forwards": 301, "seconds": 1.0}]
    table = df.markdown({"rows": rows, "memory": [{"detector": "d", "method": "rise", "queries": 8, "added_bytes": 2**20}]})
    assert "| d | rise | 1 |" in table and "1/1" in table and "peak RSS added" in table


def test_best_per_sample_time_is_positive_for_a_fixed_batch_detector() -> None:
    det = region_detector(fixed_batch=1)
    assert 0 < df.best_per_sample(det, seconds=0.03) < 1.0
