"""Loading image files into a model's explicand space."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from onnxplain.errors import InvalidInputError
from onnxplain.images import load_image, load_images


def test_png_is_converted_resized_and_scaled(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    Image.fromarray(rgb).save(tmp_path / "red.png")
    x = load_image(tmp_path / "red.png", (3, 5, 7))
    assert x.shape == (3, 5, 7) and x.dtype == np.float32
    assert np.allclose(x[0], 1.0) and np.allclose(x[1:], 0.0)
    grey = load_image(tmp_path / "red.png", (1, 4, 4))
    # ITU-R 601 luma of pure red, as Pillow's "L" conversion computes it
    assert grey.shape == (1, 4, 4) and np.allclose(grey, 76 / 255, atol=1 / 255)


def test_grey_jpeg_to_three_channels(tmp_path):
    Image.fromarray(np.full((6, 6), 200, np.uint8)).save(tmp_path / "g.jpg", quality=100)
    x = load_image(tmp_path / "g.jpg", (3, 6, 6))
    assert x.shape == (3, 6, 6)
    assert np.allclose(x, 200 / 255, atol=2 / 255)
    assert np.allclose(x[0], x[1]) and np.allclose(x[1], x[2])


def test_transparent_pixels_become_black(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[:2, :, 3] = 255  # top half opaque white, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    x = load_image(tmp_path / "t.png", (3, 4, 4))
    assert np.allclose(x[:, :2], 1.0) and np.allclose(x[:, 2:], 0.0)
    assert load_image(tmp_path / "t.png", (4, 4, 4)).shape == (4, 4, 4)  # kept for a 4-channel model


def test_sixteen_bit_png_uses_its_full_range(tmp_path):
    arr = np.full((4, 4), 65535 // 2, np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    x = load_image(tmp_path / "deep.png", (1, 4, 4))
    assert np.allclose(x, 0.5, atol=1e-3)


def test_npy_must_already_have_the_model_shape(tmp_path):
    a = np.random.default_rng(0).random((3, 4, 4))
    np.save(tmp_path / "ok.npy", a)
    np.save(tmp_path / "batch1.npy", a[None])
    assert np.array_equal(load_image(tmp_path / "ok.npy", (3, 4, 4)), a.astype(np.float32))
    assert load_image(tmp_path / "batch1.npy", (3, 4, 4)).shape == (3, 4, 4)
    with pytest.raises(InvalidInputError, match="input shape is"):
        load_image(tmp_path / "ok.npy", (1, 4, 4))
    np.save(tmp_path / "nan.npy", np.full((3, 4, 4), np.nan))
    with pytest.raises(InvalidInputError, match="NaN"):
        load_image(tmp_path / "nan.npy", (3, 4, 4))
    np.save(tmp_path / "obj.npy", np.array(["a", "b"]))
    with pytest.raises(InvalidInputError, match="numeric"):
        load_image(tmp_path / "obj.npy", (2,))


def test_clear_errors_for_bad_files(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_image(tmp_path / "missing.png", (1, 4, 4))
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(InvalidInputError, match="not an image"):
        load_image(tmp_path / "x.png", (1, 4, 4))
    (tmp_path / "d.png").mkdir()
    with pytest.raises(InvalidInputError, match="not a file"):
        load_image(tmp_path / "d.png", (1, 4, 4))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "ok.png")
    with pytest.raises(InvalidInputError, match="not an image"):
        load_image(tmp_path / "ok.png", (784,))
    with pytest.raises(InvalidInputError, match="channels"):
        load_image(tmp_path / "ok.png", (2, 4, 4))
    with pytest.raises(InvalidInputError, match="no image"):
        load_images([], (1, 4, 4))
    # truncated PNG: header present, data cut
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError):
        load_image(tmp_path / "cut.png", (1, 4, 4))
