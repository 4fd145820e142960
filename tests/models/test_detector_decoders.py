"""Decoders against each format's definition: hand-built raw outputs with known boxes."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.models.detection.decoders import (
    choose_decoder,
    decode_nms_rows7,
    decode_nms_separate,
    decode_yolov5,
    decode_yolov8,
    decode_yolox,
    yolo_cells,
    yolox_grid,
)

HW = (64, 64)  # 8·8 + 4·4 + 2·2 = 84 cells


def v8_output(n: int = 2, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 4 + k, 84) with anchor 5 of sample 1 a box centred (20, 30), 10×8, class 2 at 0.9."""
    out = np.zeros((n, 4 + k, yolo_cells(HW)), np.float32)
    out[-1, :4, 5] = [20, 30, 10, 8]
    out[-1, 4 + 2, 5] = 0.9
    out[-1, 4 + 0, 5] = 0.1
    return out, np.array([15.0, 26.0, 25.0, 34.0]), np.array([0.1, 0.0, 0.9])


def test_yolov8_decoder_reads_channels_first_and_transposed() -> None:
    out, box, scores = v8_output()
    p = decode_yolov8(out)
    assert p.boxes.shape == (2, 84, 4) and p.objectness is None
    np.testing.assert_allclose(p.boxes[1, 5], box)
    np.testing.assert_allclose(p.class_scores[1, 5], scores, rtol=1e-6)
    assert p.best_class()[1, 5] == 2 and p.confidence()[1, 5] == pytest.approx(0.9)
    q = decode_yolov8(out.transpose(0, 2, 1), channels_last=True)
    np.testing.assert_allclose(q.boxes, p.boxes)


def test_yolov5_decoder_multiplies_objectness_into_confidence() -> None:
    out = np.zeros((1, 10, 5 + 2), np.float32)
    out[0, 3] = [50, 40, 20, 10, 0.5, 0.2, 0.8]
    p = decode_yolov5(out)
    np.testing.assert_allclose(p.boxes[0, 3], [40, 35, 60, 45])
    assert p.objectness[0, 3] == pytest.approx(0.5)
    assert p.confidence()[0, 3] == pytest.approx(0.5 * 0.8)  # YOLOv5: obj × cls


def test_yolox_decoder_applies_grid_and_strides() -> None:
    cells, strides = yolox_grid(HW)
    assert len(cells) == 84 and strides[0, 0] == 8 and strides[-1, 0] == 32
    j = 64 + 5  # stride-16 cell 5: column 1, row 1 of the 4×4 grid
    np.testing.assert_allclose(cells[j], [1, 1])
    out = np.zeros((1, 84, 6), np.float32)
    out[0, j] = [0.5, 0.25, np.log(2.0), 0.0, 0.7, 0.6]
    p = decode_yolox(out, HW)
    # centre ((1 + 0.5)·16, (1 + 0.25)·16) = (24, 20); size (2·16, 1·16) = (32, 16)
    np.testing.assert_allclose(p.boxes[0, j], [8, 12, 40, 28], rtol=1e-6)
    with pytest.raises(InvalidInputError):
        decode_yolox(np.zeros((1, 80, 6)), HW)


def test_nms_separate_outputs_pad_past_num_dets() -> None:
    boxes = np.array([[[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 2, 2]]], np.float32)
    scores = np.array([[0.9, 0.8, 0.7]], np.float32)
    classes = np.array([[3, 1, 2]], np.int64)
    p = decode_nms_separate(boxes, scores, classes, np.array([[2]]))
    np.testing.assert_allclose(p.objectness[0], [0.9, 0.8, 0.0])  # the third row is padding
    assert p.labels[0].tolist() == [3, 1, 2]
    np.testing.assert_allclose(p.class_similarity(np.array([1]))[0, 0], [0, 1, 0])


def test_nms_rows7_groups_rows_by_batch_index() -> None:
    rows = np.array([
        [1, 0, 0, 4, 4, 2, 0.5],
        [0, 1, 1, 3, 3, 0, 0.9],
        [1, 2, 2, 6, 6, 1, 0.8],
    ], np.float32)  # fmt: skip
    p = decode_nms_rows7(rows, 3)
    assert p.boxes.shape == (3, 2, 4)
    np.testing.assert_allclose(p.boxes[0, 0], [1, 1, 3, 3])
    np.testing.assert_allclose(p.boxes[1], [[0, 0, 4, 4], [2, 2, 6, 6]])
    np.testing.assert_allclose(p.objectness, [[0.9, 0], [0.5, 0.8], [0, 0]])
    assert p.labels[1].tolist() == [2, 1]
    with pytest.raises(InvalidInputError):
        decode_nms_rows7(rows, 1)  # batch index 1 with one sample


def test_choose_decoder_from_shapes_and_metadata() -> None:
    out, _, _ = v8_output(1, 3)
    assert choose_decoder({"o": out}, {}, HW, 1).name == "yolov8"
    # channels last with 4 + K and K from the metadata's names: transposed YOLOv8
    names = {"names": "{0: 'a', 1: 'b', 2: 'c'}"}
    d = choose_decoder({"o": out.transpose(0, 2, 1)}, names, HW, 1, num_classes=3)
    assert d.name == "yolov8" and d.channels_last
    v5 = np.random.default_rng(0).uniform(0, 64, (1, 3 * 84, 8)).astype(np.float32)
    assert choose_decoder({"o": v5}, {}, HW, 1).name == "yolov5"  # 3 anchors per cell
    raw = np.random.default_rng(0).uniform(-1, 1, (1, 84, 6)).astype(np.float32)
    assert choose_decoder({"o": raw}, {}, HW, 1).name == "yolox"  # one per cell, offsets within a cell
    assert choose_decoder({"o": raw}, {}, HW, 1, requested="yolov5").name == "yolov5"
    e2e = np.zeros((1, 300, 6), np.float32)
    assert choose_decoder({"o": e2e}, {}, HW, 1).layout == "rows6"
    assert choose_decoder({"o": np.zeros((5, 7), np.float32)}, {}, HW, 1).layout == "rows7"
    separate = {"num_dets": np.zeros((1, 1), np.int64), "det_boxes": np.zeros((1, 100, 4)),
                "det_scores": np.zeros((1, 100)), "det_classes": np.zeros((1, 100), np.int64)}  # fmt: skip
    d = choose_decoder(separate, {}, HW, 1)
    assert d.outputs == ("det_boxes", "det_scores", "det_classes", "num_dets")


def test_choose_decoder_refuses_what_it_cannot_read() -> None:
    out, _, _ = v8_output(1, 3)
    with pytest.raises(ModelLoadError, match="declares the task 'segment'"):
        choose_decoder({"o": out}, {"task": "segment"}, HW, 1)
    with pytest.raises(ModelLoadError):
        choose_decoder({"o": np.zeros((1, 10))}, {}, HW, 1)  # a classifier's scores
    with pytest.raises(ModelLoadError, match="4 \\+ K"):
        choose_decoder({"o": out}, {}, HW, 1, num_classes=5)  # 7 channels ≠ 4 + 5
    ambiguous = {"boxes": np.zeros((1, 9, 4)), "a": np.zeros((1, 9)), "b": np.zeros((1, 9))}
    with pytest.raises(ModelLoadError, match="cannot tell"):
        choose_decoder(ambiguous, {}, HW, 1)
    with pytest.raises(InvalidInputError):
        choose_decoder({"o": out}, {}, HW, 1, requested="detr")
