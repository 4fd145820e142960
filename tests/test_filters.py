"""Gaussian taps, mirror-padded filter operators, blur (numpy and torch), GEEX noise smoothing,
bilinear, nearest and bicubic resizing: :mod:`onnxplain.filters`."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from onnxplain.blackbox.sampling import NumpyOps
from onnxplain.errors import InvalidInputError
from onnxplain.filters import (
    bicubic_operator,
    bilinear_operator,
    blur,
    filter_operator,
    gaussian_taps,
    nearest_operator,
    smoothing_kernel,
    smoothing_variance,
)


def test_smoothing_kernel_is_frobenius_normalised_gaussian():
    k = smoothing_kernel(5, 0.7)
    assert k.shape == (5, 5)
    assert np.sum(k**2) == pytest.approx(1.0, abs=1e-12)
    assert k[2, 2] == pytest.approx(0.793, abs=1e-3)  # reference-notes value for (5, 0.7)
    assert smoothing_kernel(31, 5.0)[15, 15] == pytest.approx(0.113, abs=1e-3)
    np.testing.assert_allclose(k, k.T)
    assert np.unravel_index(k.argmax(), k.shape) == (2, 2)


def test_filter_operator_is_mirror_padded_correlation():
    rng = np.random.default_rng(0)
    img = rng.random((9, 12))
    taps = gaussian_taps(5, 1.3)
    expected = ndimage.correlate(img, np.outer(taps, taps), mode="mirror")
    got = filter_operator(9, taps) @ img @ filter_operator(12, taps).T
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_smoothed_noise_keeps_per_pixel_variance():
    # Empirical variance of smoothed white noise vs the analytic map (20k samples: the
    # relative standard error of a variance estimate is sqrt(2/20000) = 1 %; tolerance 5 %).
    ops = NumpyOps()
    noise = ops.normal(ops.rng(0, "geex", 0), (20000, 10, 10)).astype(np.float64)
    taps = gaussian_taps(5, 0.7)
    taps = taps / np.linalg.norm(taps)
    smoothed = filter_operator(10, taps) @ noise @ filter_operator(10, taps).T
    var_map = smoothing_variance(10, 10, 5, 0.7)
    np.testing.assert_allclose(smoothed.var(axis=0), var_map, rtol=0.05)
    assert var_map[3:7, 3:7] == pytest.approx(np.ones((4, 4)), abs=1e-12)  # interior preserved
    # reflected taps fold onto the same samples at a corner (the notes measured ≈ 0.36/0.25 = 1.44)
    assert var_map[0, 0] == pytest.approx(1.456, abs=0.002)


def test_blur_matches_torchvision_gaussian_blur():
    torch = pytest.importorskip("torch")
    from torchvision.transforms import GaussianBlur

    img = np.random.default_rng(1).random((2, 3, 40, 37)).astype(np.float32)
    expected = GaussianBlur((31, 31), 5.0)(torch.from_numpy(img)).numpy()
    np.testing.assert_allclose(blur(img, 31, 5.0), expected, atol=1e-5)
    assert blur(img[:, :, :8, :8]).shape == (2, 3, 8, 8)  # smaller than the kernel: still defined


@pytest.mark.parametrize(("n_in", "n_out"), [(7, 32), (7, 40), (8, 225), (2, 9), (1, 4)])
def test_bilinear_operator_matches_skimage_resize(n_in, n_out):
    from skimage.transform import resize

    grid = np.random.default_rng(2).random((n_in, n_in))
    expected = resize(grid, (n_out, n_out), order=1, mode="reflect", anti_aliasing=False)
    op = bilinear_operator(n_in, n_out)
    np.testing.assert_allclose(op @ grid @ op.T, expected, atol=1e-12)


def test_gaussian_taps_reject_bad_sizes():
    with pytest.raises(InvalidInputError, match="odd"):
        gaussian_taps(4, 1.0)
    with pytest.raises(InvalidInputError, match="sigma"):
        gaussian_taps(5, 0.0)


@pytest.mark.parametrize(("n_in", "n_out"), [(8, 224), (7, 24), (4, 10), (3, 3), (1, 6), (12, 5)])
def test_resize_operators_match_torch_interpolate(n_in, n_out):
    # torch's bicubic (Keys a = −0.75, half-pixel, clamped taps = cv2 INTER_CUBIC), bilinear
    # (align_corners=False = TF2 bilinear) and nearest-exact (= TF2 nearest), up and down.
    import torch
    import torch.nn.functional as F

    g = np.random.default_rng(n_in * n_out).random((n_in, n_in + 1))
    for mode, op in (
        ("bicubic", bicubic_operator),
        ("bilinear", lambda a, b: bilinear_operator(a, b, "clamp")),
        ("nearest-exact", nearest_operator),
    ):
        kwargs = {} if mode == "nearest-exact" else {"align_corners": False}
        ref = F.interpolate(torch.tensor(g)[None, None], size=(n_out, n_out + 2), mode=mode, **kwargs)[0, 0].numpy()
        np.testing.assert_allclose(op(n_in, n_out) @ g @ op(n_in + 1, n_out + 2).T, ref, atol=1e-13)
    np.testing.assert_array_equal(bicubic_operator(n_in, n_in), np.eye(n_in))  # same size: identity, exactly
    with pytest.raises(InvalidInputError, match="edge"):
        bilinear_operator(n_in, n_out, "wrap")
