"""LA: closed form on a linear softmax model, the local box, zero where x = 0, signs, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onnxplain.errors import InvalidInputError
from onnxplain.gradients import LA
from tests.gradients.gradient_helpers import (
    Recorder,
    adversarial_oracle,
    images,
    linear_parts,
    make_cnn,
    make_linear,
)


@pytest.mark.parametrize("variant", ["reference", "paper"])
def test_matches_the_closed_form_on_a_linear_softmax_model(variant: str) -> None:
    model = make_linear(3 * 4 * 4)
    x = images(2, shape=(3, 4, 4), dtype=np.float64)
    x[:, 1, 2, 2] = 0.98  # clipped at 1 from above
    s, steps, samples = 4.0, 5, 4
    e = LA(spatial_range=s, steps=steps, samples=samples, variant=variant, seed=3, batch_size=5).explain(
        model, x
    )
    w, b = linear_parts(model)
    c = 1.0 if variant == "reference" else 0.5
    for i in range(2):
        xi = x[i].reshape(-1)
        p = w @ xi + b
        y = int(np.argmax(p))
        if variant == "paper":
            classes = [int(k) for k in np.argsort(-p, kind="stable") if k != y][: samples - 1]
        else:
            perm = np.random.default_rng(3).permutation(10).tolist()
            classes = [k for k in perm if k != y][: samples - 1]
        expected, _ = adversarial_oracle(
            w, b, xi, y, [*classes, None], eps=c * xi / s, steps=steps, cumulative=False, early_stop=False
        )
        np.testing.assert_allclose(e.attributions[i].reshape(-1), expected, rtol=1e-9, atol=1e-15)
    # S·T forwards per explicand; 2 backward passes per targeted step, 1 per untargeted step
    assert e.n_queries == 2 + 2 * samples * steps
    assert e.n_backward == 2 * (2 * (samples - 1) + 1) * steps
    assert e.params["n_targeted"] == samples - 1 and e.params["step_scale"] == c


@pytest.mark.parametrize("variant, c", [("reference", 1.0), ("paper", 0.5)])
def test_queries_stay_in_the_local_box_and_zero_pixels_get_zero(variant: str, c: float) -> None:
    rec = Recorder(make_cnn())
    x = torch.from_numpy(images(2))
    s = 5.0
    e = LA(spatial_range=s, steps=4, samples=4, variant=variant, batch_size=4).explain(rec, x)
    q = rec.queries()
    assert float(q.min()) >= 0.0 and float(q.max()) <= 1.0
    inside = (
        ((q[:, None] - x[None]).abs() <= c * x[None] / s + 1e-7).flatten(2).all(2)
    )  # (queries, explicands)
    assert bool(inside.any(1).all())
    assert bool((q[:, :, :4, :4] == 0).all())  # the black square never moves
    assert np.all(e.attributions[:, :, :4, :4] == 0.0) and np.any(e.attributions != 0)


def test_untargeted_run_alone_is_non_negative(cnn: nn.Module) -> None:
    e = LA(steps=5, samples=1).explain(cnn, images(2))
    assert e.params["n_targeted"] == 0
    assert float(e.attributions.min()) >= 0.0 and float(e.attributions.max()) > 0.0


def test_batch_invariance(cnn64: nn.Module) -> None:
    x = images(4, dtype=np.float64)
    for variant in ("reference", "paper"):
        method = LA(steps=3, samples=4, variant=variant, batch_size=5)
        batch = method.explain(cnn64, x)
        alone = method.explain(cnn64, x[3])
        np.testing.assert_allclose(alone.attributions, batch.attributions[3], rtol=1e-9, atol=1e-15)


def test_deterministic_under_a_seed_and_the_seed_picks_the_classes(cnn: nn.Module) -> None:
    x = images(2)
    torch.manual_seed(0)
    a = LA(steps=2, samples=3, seed=1).explain(cnn, x)
    np.random.seed(5)
    b = LA(steps=2, samples=3, seed=1).explain(cnn, x)
    c = LA(steps=2, samples=3, seed=2).explain(cnn, x)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert not np.allclose(a.attributions, c.attributions)
    assert a.params["seed"] == 1 and a.params["variant"] == "reference"


def test_negative_inputs_are_rejected(cnn: nn.Module) -> None:
    x = images(1)[0] - 0.5  # e.g. ImageNet-normalised pixels
    with pytest.raises(InvalidInputError, match="non-negative"):
        LA(steps=1, samples=1).explain(cnn, x)
    with pytest.raises(InvalidInputError, match="bounds"):
        LA(steps=1, samples=1).explain(cnn, images(1)[0] + 1.0)
