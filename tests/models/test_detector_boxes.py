"""Box geometry: IoU without "+1" (frontier-methods §6 test 1), NMS, the letterbox round trip."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.errors import InvalidInputError
from onnxplain.models.detection.boxes import Letterbox, iou_matrix, nms, resize_image, xywh_to_xyxy


def test_iou_identical_is_one_and_disjoint_is_zero_in_normalised_coordinates() -> None:
    a = np.array([[0.1, 0.1, 0.3, 0.3]])
    b = np.array([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.7, 0.7], [0.3, 0.1, 0.5, 0.3]])
    iou = iou_matrix(a, b)[0]
    assert iou[0] == pytest.approx(1.0)
    # Two disjoint 0.2-wide boxes: xaitk's "+1" convention would give 0.29 here.
    assert iou[1] == 0.0
    assert iou[2] == 0.0  # touching edges share no area


def test_iou_partial_overlap_matches_hand_computation_in_pixels() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [2.0, 2.0, 4.0, 4.0]])
    # 50 / (100 + 100 - 50) and 4 / 100 (b inside a)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [50 / 150, 4 / 100])


def test_iou_broadcasts_leading_dimensions_and_handles_degenerate_boxes() -> None:
    targets = np.array([[[0.0, 0.0, 2.0, 2.0]]])  # (1, 1, 4)
    props = np.array([[[0.0, 0.0, 2.0, 2.0]], [[1.0, 1.0, 1.0, 1.0]]])  # (2, 1, 4): second is a point
    out = iou_matrix(targets, props)
    assert out.shape == (2, 1, 1)
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 0.0])
    assert iou_matrix(np.array([[1.0, 1, 1, 1]]), np.array([[1.0, 1, 1, 1]]))[0, 0] == 0.0


def test_xywh_to_xyxy() -> None:
    np.testing.assert_allclose(xywh_to_xyxy(np.array([[10.0, 20.0, 4.0, 6.0]])), [[8.0, 17.0, 12.0, 23.0]])


def test_nms_is_class_aware_and_keeps_best_first() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.6])
    classes = np.array([0, 0, 1, 0])
    keep = nms(boxes, scores, classes, 0.5)
    # box 0 overlaps the better box 1 of its class (IoU 81/119 > 0.5): dropped; box 2 is another class.
    assert keep.tolist() == [1, 2, 3]


def test_letterbox_matches_ultralytics_geometry() -> None:
    # A 1080×810 (H×W) photo into 640×640: r = 640/1080, content 640×480, 80 pixels of pad left and right.
    lb = Letterbox.fit((1080, 810), (640, 640))
    assert lb.content_hw == (640, 480) and (lb.top, lb.left) == (0, 80)
    # Odd padding: Ultralytics puts round(dw/2 − 0.1) on the left (the smaller half).
    odd = Letterbox.fit((100, 99), (64, 64))
    assert odd.content_hw == (64, 63) and odd.left == 0
    corner = Letterbox.fit((1080, 810), (640, 640), center=False)
    assert (corner.top, corner.left) == (0, 0)


def test_letterbox_round_trip_maps_boxes_back_to_the_photo() -> None:
    lb = Letterbox.fit((1080, 810), (640, 640))
    image_boxes = np.array([[100.0, 200.0, 400.0, 900.0], [0.0, 0.0, 810.0, 1080.0]])
    content = lb.image_to_content(image_boxes)
    model = lb.content_to_model(content)
    np.testing.assert_allclose(model[1], [80, 0, 560, 640])  # the whole photo fills the content area
    np.testing.assert_allclose(lb.content_to_image(lb.model_to_content(model)), image_boxes, atol=1e-9)


def test_letterbox_pad_places_content_and_keeps_the_grey() -> None:
    lb = Letterbox.fit((4, 2), (4, 4))
    out = np.full((1, 3, 4, 4), lb.pad_value, np.float32)
    lb.pad(np.ones((1, 3, 4, 2), np.float32), out)
    assert (out[:, :, :, 1:3] == 1).all()
    np.testing.assert_allclose(out[:, :, :, [0, 3]], 114 / 255, rtol=1e-6)


def test_resize_image_keeps_constants_and_refuses_bad_shapes() -> None:
    x = np.full((3, 50, 30), 0.25, np.float32)
    y = resize_image(x, (20, 12))
    assert y.shape == (3, 20, 12)
    np.testing.assert_allclose(y, 0.25, atol=1e-6)
    with pytest.raises(InvalidInputError):
        resize_image(np.zeros((50, 30)), (10, 10))
    with pytest.raises(InvalidInputError):
        Letterbox.fit((0, 10), (64, 64))
