"""DetectorModel: D-RISE similarity (frontier-methods §6 tests 2–4), targets, counters and budget.

The detectors here are plain functions (``Detector.from_function``) with known outputs, so every
expected value is computed by hand or by a few lines of numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox.geex import GEEX
from onnxplain.blackbox.rise import RISE
from onnxplain.errors import InvalidInputError, QueryBudgetExceeded
from onnxplain.models.detection.boxes import iou_matrix
from onnxplain.models.detection.decoders import Proposals
from onnxplain.models.detection.runtime import Detector
from onnxplain.models.detection.targets import drise_scores
from onnxplain.models.detector import DetectorModel, explain_detections, repeated_blocks
from onnxplain.registry import BLACKBOX, get_method

HW = (32, 32)
REGION = (8, 8, 20, 16)  # x1, y1, x2, y2: the synthetic detector looks here


def region_detector(calls: list[int] | None = None, **options: object) -> Detector:
    """§6 test 2: always the REGION box, class 0, score = mean brightness inside REGION (the
    fraction unmasked when the photo is white and masked pixels are black); a second, fixed
    detection of class 1 elsewhere with score 0.5 (NMS-graph outputs)."""
    x1, y1, x2, y2 = REGION

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        if calls is not None:
            calls.append(len(x))
        n = len(x)
        inside = x[:, :, y1:y2, x1:x2].mean(axis=(1, 2, 3))
        boxes = np.tile(np.array([[REGION, (22, 22, 30, 30)]], np.float32), (n, 1, 1))
        scores = np.stack([inside, np.full(n, 0.5)], axis=1).astype(np.float32)
        classes = np.tile(np.array([[0, 1]], np.int64), (n, 1))
        return {"boxes": boxes, "scores": scores, "classes": classes}

    return Detector.from_function(run, HW, names=["thing", "other"], **options)


def white() -> np.ndarray:
    return np.ones((3, *HW), np.float32)


def test_drise_score_equals_the_papers_formula_by_hand() -> None:
    # two proposals; target box (0,0,10,10) of class 1
    boxes = np.array([[[0, 0, 10, 10], [5, 0, 15, 10]]], float)
    scores = np.array([[[0.3, 0.4], [0.0, 0.9]]])  # P_j over 2 classes
    obj = np.array([[0.5, 0.8]])
    p = Proposals(boxes, objectness=obj, class_scores=scores)
    s = drise_scores(p, np.array([[0, 0, 10, 10]]), np.array([1]), "model")
    # proposal 0: IoU 1 · cos = 0.4/0.5 · 0.5 = 0.4 ; proposal 1: IoU 1/3 · 1 · 0.8 = 0.2667
    assert s.shape == (1, 1)
    assert s[0, 0] == pytest.approx(max(1.0 * 0.8 * 0.5, (50 / 150) * 1.0 * 0.8))
    none = drise_scores(p, np.array([[0, 0, 10, 10]]), np.array([1]), "none")
    assert none[0, 0] == pytest.approx(1.0 * 0.8)
    top = drise_scores(p, np.array([[0, 0, 10, 10]]), np.array([1]), "max_class")
    assert top[0, 0] == pytest.approx(max(0.8 * 0.4, (1 / 3) * 1.0 * 0.9))


def test_max_over_proposals_ignores_empty_and_low_score_proposals() -> None:
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 20, (3, 5, 4))
    boxes[..., 2:] += boxes[..., :2] + 1
    scores = rng.uniform(0, 1, (3, 5, 4))
    targets, classes = boxes[0, :2], np.array([1, 3])
    base = drise_scores(Proposals(boxes, class_scores=scores), targets, classes)
    # empty proposals (all-zero scores) anywhere, and faint ones exactly on the targets' boxes
    extra_boxes = np.concatenate([boxes, np.zeros((3, 2, 4)), np.tile(targets, (3, 1, 1))], axis=1)
    faint = np.zeros((3, 2, 4))
    faint[:, 0, 1] = faint[:, 1, 3] = 1e-4  # pointing exactly at each target's class
    extra_scores = np.concatenate([scores, np.zeros((3, 2, 4)), faint], axis=1)
    more = drise_scores(Proposals(extra_boxes, class_scores=extra_scores), targets, classes)
    np.testing.assert_array_equal(more, base)
    # Without an objectness term a faint proposal on the box has cos = 1 and takes the max:
    bare = drise_scores(Proposals(extra_boxes, class_scores=extra_scores), targets, classes, "none")
    np.testing.assert_allclose(bare, 1.0)


def test_detections_targets_and_labels() -> None:
    model = DetectorModel(region_detector(), white())
    assert [d.label for d in model.detections] == ["thing", "other"]
    assert model.num_classes == 2 and model.labels == ["thing 1.00", "other 0.50"]
    np.testing.assert_allclose(model.targets[0].box, REGION)
    assert DetectorModel(region_detector(), white(), targets="other").targets[0].class_id == 1
    assert DetectorModel(region_detector(), white(), targets=[1]).num_classes == 1
    with pytest.raises(InvalidInputError, match="class car"):
        DetectorModel(region_detector(), white(), targets="car")
    with pytest.raises(InvalidInputError, match="out of range"):
        DetectorModel(region_detector(), white(), targets=5)
    with pytest.raises(InvalidInputError, match="finds nothing"):
        DetectorModel(region_detector(), np.zeros_like(white()), conf=0.6)
    with pytest.raises(InvalidInputError):
        DetectorModel(region_detector(), np.ones((1, 8, 8), np.float32))


def test_scores_on_the_photo_and_the_first_forward_is_counted() -> None:
    model = DetectorModel(region_detector(), white())
    assert model.n_queries == 1
    out = model(np.stack([white(), np.zeros_like(white())]))
    np.testing.assert_allclose(out, [[1.0, 0.5], [0.0, 0.5]])
    assert model.n_queries == 3 and model.n_requested == 3


def test_saliency_concentrates_in_the_region_the_detector_reads() -> None:
    """§6 test 2: objectness = unmasked fraction of R, so the RISE map's mass sits in R."""
    model = DetectorModel(region_detector(), white(), targets=[0])
    [exp] = explain_detections(RISE(2000, grid=8, seed=0), model)
    s = exp.saliency()
    x1, y1, x2, y2 = REGION
    inside = np.zeros(HW, bool)
    inside[y1:y2, x1:x2] = True
    near = np.zeros(HW, bool)  # R grown by one RISE cell (4 pixels): the masks' bilinear reach
    near[y1 - 4 : y2 + 4, x1 - 4 : x2 + 4] = True
    assert inside.ravel()[s.argmax()]
    # R's mean stands > 5 noise standard deviations above the far background (7.2 at seed 0;
    # 7.2-8.2 over seeds 0-3), and ≥ 70 % of the positive mass above the median is within a
    # cell of R (0.80-0.89 over seeds 0-3; R is 9 % of the image, its surround 23 %).
    far = s[~near]
    assert (s[inside].mean() - far.mean()) / far.std() > 5
    positive = np.clip(s - np.median(s), 0, None)
    assert positive[near].sum() / positive.sum() >= 0.7


def test_several_targets_share_queries_and_match_separate_runs() -> None:
    """§6 test 4: one shared stream gives the same maps as one run per target, at the cost of one."""
    joint = DetectorModel(region_detector(), white())
    joint.reset_counters()
    both = explain_detections(GEEX(128, seed=3), joint)
    assert joint.n_queries == 128 + 2  # 2 forwards on x (one per GEEX call on x̂/x), queries shared
    assert joint.n_requested == 2 * (128 + 2)
    for t, exp in enumerate(both):
        alone = DetectorModel(region_detector(), white(), targets=[t])
        [single] = explain_detections(GEEX(128, seed=3), alone)
        np.testing.assert_array_equal(exp.attributions, single.attributions)
        assert exp.params["targets_sharing_queries"] == 2


def test_repeated_blocks_finds_exact_copies_only() -> None:
    rng = np.random.default_rng(0)
    block = rng.random((5, 3, 4, 4)).astype(np.float32)
    assert repeated_blocks(np.concatenate([block] * 3)) == 3
    assert repeated_blocks(np.concatenate([block[:1]] * 4)) == 4
    other = np.concatenate([block, block])
    other[7, 2, 3, 2] += 1e-3  # a pixel off the fingerprint: the full comparison catches it
    assert repeated_blocks(other) == 1
    assert repeated_blocks(block) == 1


def test_fixed_batch_runs_one_sample_per_call_without_padding() -> None:
    calls: list[int] = []
    model = DetectorModel(region_detector(calls, fixed_batch=1), white())
    calls.clear()
    rng = np.random.default_rng(0)
    model(rng.random((5, 3, *HW)).astype(np.float32))
    assert calls == [1] * 5 and model.n_calls == 1 + 5
    assert model.describe()["detector"]["batch_size_source"] == "fixed by the graph's batch axis"


def test_budget_is_checked_before_any_query() -> None:
    model = DetectorModel(region_detector(), white(), targets=[0], max_queries=50)
    with pytest.raises(QueryBudgetExceeded):
        explain_detections(RISE(100, seed=0), model)
    assert model.n_queries == 1  # only the forward that found the detections
    with pytest.raises(QueryBudgetExceeded):
        DetectorModel(region_detector(), white(), max_queries=0)


def test_iou_of_targets_is_taken_in_the_detectors_frame() -> None:
    # A non-square photo: the content sits at an offset in the model input; the target box is
    # mapped back there before IoU, so the unperturbed score stays the detection's own.
    wide = np.ones((3, 16, 32), np.float32)
    model = DetectorModel(region_detector(), wide, targets=[1])
    assert model.letterbox.top == 8
    np.testing.assert_allclose(model.target_boxes[0], (22, 22, 30, 30))
    assert iou_matrix(model.target_boxes, np.array([[22.0, 22, 30, 30]]))[0, 0] == pytest.approx(1.0)
    np.testing.assert_allclose(model(model.explicand[None])[0, 0], 0.5)


@pytest.mark.filterwarnings("ignore:Sobol. f\\(A\\) is constant")  # target 1's score is a constant 0.5
@pytest.mark.parametrize("name", sorted(BLACKBOX))
def test_every_method_shares_queries_between_targets(name: str) -> None:
    """Each registered method draws one perturbation set for all explicands, so two targets cost
    the forwards of one and give the maps of separate runs."""
    photo = np.random.default_rng(1).uniform(0.3, 1.0, (3, *HW)).astype(np.float32)
    cls = get_method(name)
    # Sobol's budget is a whole design (g = 8, N = 32); Occlusion's finest stride on 32×32 needs 122
    budget = {"sobol": 2080, "hsic": 128, "occlusion": 128}.get(name, 64)

    def make() -> object:
        return cls(**{cls.budget_param: budget}, seed=0)

    joint = DetectorModel(region_detector(), photo)
    joint.reset_counters()
    both = explain_detections(make(), joint)
    alone = DetectorModel(region_detector(), photo, targets=[1])
    alone.reset_counters()
    [single] = explain_detections(make(), alone)
    if name != "partitionshap":  # it picks each next query from its own target's scores: no sharing
        assert joint.n_queries == alone.n_queries
    np.testing.assert_array_equal(both[1].attributions, single.attributions)


def test_target_groups_bound_the_buffer_and_keep_the_maps() -> None:
    shared = explain_detections(RISE(64, seed=0), DetectorModel(region_detector(), white()))
    split_model = DetectorModel(region_detector(), white())
    split = explain_detections(RISE(64, seed=0), split_model, max_buffer_bytes=1)
    assert [e.params["targets_sharing_queries"] for e in split] == [1, 1]
    assert split_model.n_queries == 1 + 2 * 65  # one group per target: its queries and f(x)
    for a, b in zip(shared, split, strict=True):
        np.testing.assert_array_equal(a.attributions, b.attributions)


def test_nms_rows_from_several_calls_keep_their_samples() -> None:
    """(M, 7) rows carry batch indices per call; joined over calls they must point at the right sample."""

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        level = x[:, 0, 0, 0]  # sample i of the call has one detection of size 10·level
        rows = [[i, 0, 0, 10 * v, 10 * v, 0, 0.9] for i, v in enumerate(level)]
        return {"det": np.array(rows, np.float32).reshape(-1, 7)}

    x = np.repeat(np.linspace(0.2, 1.0, 5, dtype=np.float32)[:, None, None, None], 3, axis=1)
    x = np.broadcast_to(x, (5, 3, *HW)).copy()
    for options in ({"batch_size": 2}, {"fixed_batch": 1}):  # calls of 2, 2 and 1; of 1 row each
        det = Detector.from_function(run, HW, **options)
        assert det.decoder.layout == "rows7"
        p = det.proposals(x)
        np.testing.assert_allclose(p.boxes[:, 0, 2], 10 * np.linspace(0.2, 1.0, 5), rtol=1e-6)
