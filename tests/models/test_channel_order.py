"""channel_order="BGR": a BGR model explained on RGB explicands gives the RGB model's scores and maps."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox import GEEX, RISE
from onnxplain.distributed.specs import OnnxModelSpec
from onnxplain.errors import InvalidInputError
from onnxplain.models import FunctionModel, Normalize, OnnxModel
from tests.models.builders import linear_model

SHAPE = (3, 5, 6)
RNG = np.random.default_rng(11)
W_RGB = RNG.normal(size=(int(np.prod(SHAPE)), 4)).astype(np.float32)
# the same classifier trained on BGR input: its weights for blue sit where the RGB model's red ones do
W_BGR = W_RGB.reshape(*SHAPE, 4)[::-1].reshape(-1, 4).copy()


def red_minus_blue(order: str):
    """Two classes: mean(R) − mean(B) and its negation, for a model reading ``order`` input."""
    r, b = (0, 2) if order == "RGB" else (2, 0)

    def f(z: np.ndarray) -> np.ndarray:
        v = np.asarray(z, np.float64)[:, r].mean(axis=(1, 2)) - np.asarray(z, np.float64)[:, b].mean(axis=(1, 2))
        return np.stack([v, -v], axis=1)

    return f


@pytest.fixture()
def images() -> np.ndarray:
    x = np.random.default_rng(3).random((4, *SHAPE), dtype=np.float32)
    x[:, 0] += 0.3  # reddish: R − B > 0
    return np.clip(x, 0, 1)


def test_function_model_scoring_red_minus_blue(images: np.ndarray) -> None:
    rgb = FunctionModel(red_minus_blue("RGB"), SHAPE, 2)
    bgr = FunctionModel(red_minus_blue("BGR"), SHAPE, 2, channel_order="BGR")
    unaware = FunctionModel(red_minus_blue("BGR"), SHAPE, 2)  # the mistake channel_order prevents
    np.testing.assert_array_equal(bgr(images), rgb(images))
    np.testing.assert_array_equal(unaware(images), -rgb(images))
    assert (rgb(images)[:, 0] > 0).all()
    explainer = GEEX(n_queries=64, seed=5)
    a, b = explainer.explain(rgb, images[0], target=0), explainer.explain(bgr, images[0], target=0)
    np.testing.assert_array_equal(b.attributions, a.attributions)  # maps stay RGB
    assert a.attributions[0].sum() > 0 > a.attributions[2].sum()  # red raises class 0, blue lowers it


def test_onnx_bgr_model_with_normalize_in_its_own_order(images: np.ndarray) -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # RGB
    rgb = OnnxModel(linear_model(W_RGB, SHAPE), output="logits", preprocess=Normalize(mean, std), batch_size=3)
    bgr = OnnxModel(
        linear_model(W_BGR, SHAPE),
        output="logits",
        channel_order="BGR",
        preprocess=Normalize(mean[::-1], std[::-1]),  # given in the model's (BGR) order
        batch_size=3,
    )
    np.testing.assert_allclose(bgr(images), rgb(images), rtol=1e-5, atol=1e-5)
    unaware = OnnxModel(linear_model(W_BGR, SHAPE), output="logits", preprocess=Normalize(mean[::-1], std[::-1]))
    assert np.abs(unaware(images) - rgb(images)).max() > 0.1  # the test can fail
    assert bgr.describe()["channel_order"] == "BGR"
    for explainer in (GEEX(n_queries=128, seed=1), RISE(n_masks=64, grid=3, seed=1)):
        a = explainer.explain(rgb, images[:2], target=[0, 1])
        b = explainer.explain(bgr, images[:2], target=[0, 1])
        scale = np.abs(a.attributions).max()
        np.testing.assert_allclose(b.attributions, a.attributions, rtol=0, atol=1e-4 * scale)


def test_device_tensors_are_reordered_too(images: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    from onnxplain.models import TorchModel

    rgb = OnnxModel(linear_model(W_RGB, SHAPE), output="logits", batch_size=4)
    bound = OnnxModel(linear_model(W_BGR, SHAPE), output="logits", channel_order="BGR", batch_size=4, io_binding=True)
    np.testing.assert_allclose(bound(torch.from_numpy(images)), rgb(images), rtol=1e-5, atol=1e-5)
    layer = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(W_BGR.shape[0], 4, bias=False))
    with torch.no_grad():
        layer[1].weight.copy_(torch.from_numpy(W_BGR.T))
    module = TorchModel(layer, SHAPE, output="logits", channel_order="BGR")
    np.testing.assert_allclose(module(torch.from_numpy(images)), rgb(images), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(module(images), rgb(images), rtol=1e-5, atol=1e-5)


def test_bad_channel_orders() -> None:
    with pytest.raises(InvalidInputError, match="channel_order"):
        FunctionModel(red_minus_blue("RGB"), SHAPE, 2, channel_order="RBG")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="3 channels"):
        OnnxModel(linear_model(W_RGB[:10], (1, 2, 5)), channel_order="BGR")


def test_spec_carries_channel_order_and_head(tmp_path, images: np.ndarray) -> None:
    path = tmp_path / "bgr.onnx"
    path.write_bytes(linear_model(W_BGR, SHAPE))
    spec = OnnxModelSpec(path, output="logits", channel_order="BGR", head="logits", batch_size=4)
    model = spec.build()
    assert model.channel_order == "BGR" and model.head_source == "declared"
    rgb = OnnxModel(linear_model(W_RGB, SHAPE), output="logits")
    np.testing.assert_allclose(model(images), rgb(images), rtol=1e-5, atol=1e-5)
    assert spec.identity()["channel_order"] == "BGR" and spec.identity()["head"] == "logits"
    plain = OnnxModelSpec(path).identity()
    assert "channel_order" not in plain and "head" not in plain  # identities of earlier runs still match
