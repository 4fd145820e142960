"""Settings of the black-box methods: the documented defaults (the papers'), the exact record every
Explanation carries in ``params``, and bad settings refused with a message that names them first.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from onnxplain.blackbox import GE, GEEX, LIME, RISE
from onnxplain.errors import InvalidInputError

from .conftest import SpyModel, tanh_scores

GAUSSIAN = {"seed": 0, "sigma": 0.1, "applied_std": 0.1, "smoothing": None, "mirror": True,
            "noise_channels": "independent", "scale": "exact"}


def test_defaults_are_recorded_in_full() -> None:
    # noise and baseline resolve by the explicand's size (recorded in each Explanation's params)
    assert GEEX().params() == {**GAUSSIAN, "n_queries": 5000, "n_perturbations": 5000, "baseline": "auto",
                               "alpha": "stratified", "noise": "auto"}
    assert GE().params() == {**GAUSSIAN, "n_queries": 5000, "n_perturbations": 5000}
    assert RISE().params() == {"n_masks": 4000, "seed": 0, "baseline": 0.0, "grid": 7, "p_keep": 0.5}
    assert LIME().params() == {"n_samples": 1000, "seed": 0, "n_segments": None, "hide": "mean",
                               "kernel_width": 0.25, "ridge_alpha": 1.0}
    for explainer in (GEEX(), GE(), RISE(), LIME()):
        assert (explainer.queries_per_call, explainer.array_backend) == (None, "auto")
    assert LIME().segmentation == "auto"


def test_reference_preset_and_overrides() -> None:
    reference = {**GAUSSIAN, "n_queries": 5000, "n_perturbations": 5000, "baseline": "zero", "sigma": 1.0,
                 "applied_std": 0.5, "noise_channels": "shared", "scale": "reference", "alpha": "reference",
                 "noise": "pixel"}
    assert GEEX.preset("reference").params() == reference
    assert GEEX.reference().params() == reference
    assert GEEX.reference(100, sigma=0.3, seed=4).params() == {
        **reference, "n_queries": 100, "n_perturbations": 100, "sigma": 0.3, "applied_std": 0.15, "seed": 4}
    assert GEEX.preset("reference", 10, alpha="stratified").params()["alpha"] == "stratified"
    with pytest.raises(InvalidInputError, match="^preset must be one of 'reference', 'paper-mnist', 'paper-imagenet', not 'paper'"):
        GEEX.preset("paper")


def test_explanations_record_the_settings_actually_used() -> None:
    shape = (3, 8, 8)
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    model = SpyModel(tanh_scores(shape), shape)
    cases = [
        (GEEX(64, smoothing=(3, 0.5), seed=2), {"smoothing": [3, 0.5]}),
        (GE(65, mirror=True), {}),
        (RISE(64, grid=4, baseline="blur"), {}),
        (LIME(64, n_segments=16, segmentation="grid", hide=0.5), {"segmentation": "grid(4x4)"}),
    ]
    for explainer, extra in cases:
        exp = explainer.explain(model, x, target=0)
        expected = {**explainer.params(), "array_backend": "numpy", **extra}
        if explainer.name == "geex":  # "auto" settings are recorded as resolved for these explicands
            expected.update(noise="pixel", baseline="zero")
        assert exp.params == expected
        assert exp.method == explainer.name
    assert GE(65).params()["n_perturbations"] == 64  # a mirrored odd budget drops its unpaired query
    assert RISE(baseline="blur").params()["baseline"] == "blur(31,5.0)"


BAD = [
    (GEEX, {"n_queries": 1}, "n_queries"),
    (GEEX, {"n_queries": 1, "mirror": False}, None),  # one unpaired query is a valid budget
    (GEEX, {"sigma": 0.0}, "sigma"),
    (GEEX, {"smoothing": (4, 1.0)}, "the smoothing kernel size"),
    (GEEX, {"smoothing": (3, -1.0)}, "smoothing sigma"),
    (GEEX, {"smoothing": "wide"}, "smoothing"),
    (GEEX, {"mirror": 1}, "mirror"),
    (GEEX, {"alpha": "sobol"}, "alpha"),
    (GEEX, {"noise_channels": "rgb"}, "noise_channels"),
    (GEEX, {"scale": "half"}, "scale"),
    (GEEX, {"seed": -1}, "seed"),
    (GEEX, {"queries_per_call": 0}, "queries_per_call"),
    (GEEX, {"array_backend": "jax"}, "array_backend"),
    (GE, {"n_queries": 0}, "n_queries"),
    (GE, {"sigma": -0.1}, "sigma"),
    (GE, {"noise_channels": "rgb"}, "noise_channels"),
    (RISE, {"n_masks": 0}, "n_masks"),
    (RISE, {"grid": 0}, "grid"),
    (RISE, {"p_keep": 0.0}, "p_keep"),
    (LIME, {"n_samples": 1}, "n_samples"),
    (LIME, {"segmentation": "watershed"}, "segmentation"),
    (LIME, {"segmentation": np.zeros((2, 2), np.float32)}, "segmentation"),
    (LIME, {"hide": "blur"}, "hide"),
    (LIME, {"hide": True}, "hide"),
    (LIME, {"kernel_width": 0.0}, "kernel_width"),
    (LIME, {"ridge_alpha": -1.0}, "ridge_alpha"),
    (LIME, {"n_segments": 0}, "n_segments"),
]


@pytest.mark.parametrize(("cls", "kwargs", "name"), BAD, ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in BAD])
def test_a_bad_setting_is_refused_by_name(cls, kwargs, name) -> None:
    if name is None:
        cls(**kwargs)
        return
    with pytest.raises(InvalidInputError, match=f"^{re.escape(name)} must"):
        cls(**kwargs)


def test_rise_grid_may_equal_the_image_side_but_not_exceed_it() -> None:
    shape = (1, 6, 8)
    x = np.zeros(shape, np.float32)
    exp = RISE(8, grid=6).explain(SpyModel(tanh_scores(shape), shape), x, target=0)
    assert exp.attributions.shape == shape
    with pytest.raises(InvalidInputError, match=r"^grid 7 is finer than the 6×8 image\.$"):
        RISE(8, grid=7).explain(SpyModel(tanh_scores(shape), shape), x, target=0)


def test_diagnostics_are_scalars_for_one_explicand_and_arrays_for_a_batch() -> None:
    shape = (1, 8, 8)
    xs = np.random.default_rng(1).random((2, *shape)).astype(np.float32)
    lime = LIME(64, segmentation="grid", n_segments=4)
    one = lime.explain(SpyModel(tanh_scores(shape), shape), xs[0], target=0)
    assert all(isinstance(v, (int, float)) for v in one.diagnostics.values()) and one.diagnostics["n_segments"] == 4
    batch = lime.explain(SpyModel(tanh_scores(shape), shape), xs, target=0)
    assert all(v.shape == (2,) for v in batch.diagnostics.values())
    assert batch.diagnostics["r2"][0] == one.diagnostics["r2"]


def test_non_finite_scores_of_a_plain_query_model_are_refused() -> None:
    from onnxplain.errors import NonFiniteOutputError

    class Plain:  # a QueryModel without the instrumented base's own checks
        input_shape = (1, 4, 4)
        num_classes = 2

        def __call__(self, batch):
            rows = np.asarray(batch, np.float64).reshape(len(batch), -1)
            v = np.where(np.abs(rows).max(1) > 1.5, np.nan, rows.sum(1))
            return np.stack([v, -v], axis=1)

    with pytest.raises(NonFiniteOutputError, match="^the model returned non-finite scores for some perturbed queries"):
        GEEX(64, sigma=1.0).explain(Plain(), np.full((1, 4, 4), 0.5, np.float32), target=0)


def test_non_finite_explicands_are_refused_before_any_query() -> None:
    shape = (1, 4, 4)
    model = SpyModel(tanh_scores(shape), shape)
    with pytest.raises(InvalidInputError, match=r"^the explicand holds NaN or infinite values\.$"):
        RISE(8, grid=2).explain(model, np.full(shape, np.inf, np.float32))
    assert model.n_queries == 0
