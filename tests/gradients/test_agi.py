"""AGI: closed form on a linear softmax model, path invariants, class choice, batch invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onnxplain.errors import InvalidInputError
from onnxplain.gradients import AGI
from onnxplain.gradients._explore import false_classes
from tests.gradients.gradient_helpers import (
    Recorder,
    adversarial_oracle,
    images,
    linear_parts,
    make_cnn,
    make_linear,
)


def _linear_case(seed: int = 0) -> tuple[nn.Module, np.ndarray]:
    model = make_linear(3 * 4 * 4, seed=seed)
    x = images(2, shape=(3, 4, 4), seed=seed, dtype=np.float64)
    x[:, 0, 3, 3] = 1.0  # pixels on both bounds exercise the clamp
    return model, x


@pytest.mark.parametrize("path", ["reference", "cumulative"])
@pytest.mark.parametrize("eps", [0.05, 0.25])
def test_matches_the_closed_form_on_a_linear_softmax_model(path: str, eps: float) -> None:
    model, x = _linear_case()
    e = AGI(epsilon=eps, steps=6, n_classes=4, class_selection="top", path=path, batch_size=5).explain(
        model, x
    )
    w, b = linear_parts(model)
    total_forwards = 0
    for i in range(2):
        xi = x[i].reshape(-1)
        p = np.exp(w @ xi + b)
        y = int(np.argmax(p))
        top = [int(c) for c in np.argsort(-p, kind="stable") if c != y][:4]
        expected, forwards = adversarial_oracle(
            w, b, xi, y, top, eps=eps, steps=6, cumulative=path == "cumulative", early_stop=True
        )
        total_forwards += forwards
        np.testing.assert_allclose(e.attributions[i].reshape(-1), expected, rtol=1e-9, atol=1e-15)
    assert e.n_queries == 2 + total_forwards
    assert e.n_backward <= 2 * total_forwards


def test_the_closed_form_cases_exercise_the_early_stop() -> None:
    model, x = _linear_case()
    w, b = linear_parts(model)
    xi = x[0].reshape(-1)
    y = int(np.argmax(w @ xi + b))
    classes = [c for c in range(10) if c != y]
    _, stopped = adversarial_oracle(w, b, xi, y, classes, eps=0.25, steps=6, cumulative=True, early_stop=True)
    _, full = adversarial_oracle(w, b, xi, y, classes, eps=0.25, steps=6, cumulative=True, early_stop=False)
    assert stopped < full


def test_reference_path_stays_within_epsilon_of_x_and_in_the_unit_box() -> None:
    rec = Recorder(make_cnn())
    x = torch.from_numpy(images(2))
    AGI(epsilon=0.05, steps=5, n_classes=4, batch_size=6).explain(rec, x)
    q = rec.queries()
    assert q.shape[0] > 2
    assert float(q.min()) >= 0.0 and float(q.max()) <= 1.0
    dist = (q[:, None] - x[None]).abs().flatten(2).amax(2).amin(1)  # to the nearest explicand
    assert float(dist.max()) <= 0.05 + 1e-7


def test_cumulative_path_stays_in_the_unit_box_and_walks_further() -> None:
    rec = Recorder(make_cnn())
    x = torch.from_numpy(images(1))
    AGI(epsilon=0.05, steps=5, n_classes=4, path="cumulative").explain(rec, x[0])
    q = rec.queries()
    assert float(q.min()) >= 0.0 and float(q.max()) <= 1.0
    assert float((q - x).abs().flatten(1).amax(1).max()) > 0.05 + 1e-6


def test_batch_invariance(cnn64: nn.Module) -> None:
    x = images(4, dtype=np.float64)
    for path in ("reference", "cumulative"):
        method = AGI(steps=4, n_classes=5, path=path, batch_size=7)
        batch = method.explain(cnn64, x)
        alone = method.explain(cnn64, x[1])
        np.testing.assert_allclose(alone.attributions, batch.attributions[1], rtol=1e-9, atol=1e-15)


def test_deterministic_under_a_seed_and_the_seed_picks_the_classes(cnn: nn.Module) -> None:
    x = images(2)
    torch.manual_seed(1)
    a = AGI(steps=3, n_classes=3, seed=4).explain(cnn, x)
    torch.manual_seed(2)
    np.random.seed(3)
    b = AGI(steps=3, n_classes=3, seed=4).explain(cnn, x)
    c = AGI(steps=3, n_classes=3, seed=5).explain(cnn, x)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert not np.allclose(a.attributions, c.attributions)
    assert a.params["seed"] == 4 and a.params["path"] == "reference"


def test_n_classes_is_capped_by_the_model(cnn: nn.Module) -> None:
    e = AGI(steps=1).explain(cnn, images(1)[0])
    assert e.params["n_classes"] == 20 and e.params["n_classes_used"] == 9


def test_false_class_selection() -> None:
    scores = torch.tensor([[0.1, 0.5, 0.2, 0.05, 0.15], [0.3, 0.1, 0.1, 0.4, 0.1]])
    y = torch.tensor([1, 3])
    img, cls = false_classes(scores, y, 3, "top", 0)
    assert img.tolist() == [0, 0, 0, 1, 1, 1] and cls.tolist() == [2, 4, 0, 0, 1, 2]
    img, cls = false_classes(scores, y, 3, "random", 7)
    a, b = cls[:3].tolist(), cls[3:].tolist()
    assert 1 not in a and 3 not in b and len(set(a)) == 3 and len(set(b)) == 3
    perm = [c for c in np.random.default_rng(7).permutation(5).tolist()]
    assert a == [c for c in perm if c != 1][:3] and b == [c for c in perm if c != 3][:3]
    img, cls = false_classes(scores, torch.tensor([2, 1]), 2, "evenly_spaced", 0)
    assert img.tolist() == [0, 1, 1] and cls.tolist() == [0, 0, 2]  # grid 0, 2; y = 2 skipped
    img, cls = false_classes(scores, y, 9, "top", 0)  # capped at K − 1
    assert img.tolist() == [0] * 4 + [1] * 4


def test_inputs_outside_the_bounds_are_rejected(cnn: nn.Module) -> None:
    with pytest.raises(InvalidInputError, match="bounds"):
        AGI(steps=1).explain(cnn, images(1)[0] * 2 - 0.5)
    e = AGI(steps=1, n_classes=1, bounds=(-1.0, 2.0)).explain(cnn, images(1)[0] * 2 - 0.5)
    assert e.params["bounds"] == [-1.0, 2.0]
