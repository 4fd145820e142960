"""Seeded blocks, path positions, the array backends."""

from __future__ import annotations

import numpy as np
import pytest

from onnxplain.blackbox.sampling import NumpyOps, TorchOps, path_alphas, select_backend
from onnxplain.errors import InvalidInputError
from onnxplain.models.base import FunctionModel


def test_path_alphas_cover_the_whole_path():
    count = 1000
    u = np.random.default_rng(3).random(count)
    idx = np.arange(count)
    strat = path_alphas("stratified", u, idx, count)
    assert np.array_equal(np.floor(strat * count).astype(int), idx)  # one α per stratum
    assert strat.min() >= 0 and strat.max() < 1
    np.testing.assert_array_equal(path_alphas("uniform", u, idx, count), u.astype(np.float32))
    ref = path_alphas("reference", u, idx, count)  # the reference code's half path
    assert ref.max() < 0.5 and ref[1] == pytest.approx(1 / (2 * count - 1))
    with pytest.raises(InvalidInputError, match="alpha"):
        path_alphas("sobol", u, idx, count)


@pytest.mark.parametrize("ops_factory", [NumpyOps, lambda: TorchOps("cpu")], ids=["numpy", "torch"])
def test_blocks_are_deterministic_and_independent(ops_factory):
    ops = ops_factory()
    a = ops.to_numpy(ops.normal(ops.rng(7, "geex", 3), (4, 5)))
    b = ops.to_numpy(ops.normal(ops.rng(7, "geex", 3), (4, 5)))
    c = ops.to_numpy(ops.normal(ops.rng(7, "geex", 4), (4, 5)))
    d = ops.to_numpy(ops.normal(ops.rng(8, "geex", 3), (4, 5)))
    e = ops.to_numpy(ops.normal(ops.rng(7, "rise", 3), (4, 5)))
    np.testing.assert_array_equal(a, b)
    for other in (c, d, e):
        assert not np.array_equal(a, other)


def test_backend_selection():
    cpu = FunctionModel(lambda z: np.zeros((len(z), 2)), (1, 4, 4), 2)
    assert select_backend("auto", cpu).name == "numpy"
    assert select_backend("torch", cpu).name == "torch"

    cuda_like = FunctionModel(lambda z: np.zeros((len(z), 2)), (1, 4, 4), 2)
    cuda_like.device = "cuda:0"  # an instrumented model says where it computes
    pytest.importorskip("torch")
    chosen = select_backend("auto", cuda_like)
    assert chosen.name == "torch" and str(chosen.device) == "cuda:0"
    with pytest.raises(InvalidInputError, match="backend"):
        select_backend("jax", cpu)


def test_numpy_normals_are_standard_normal_and_seeded():
    from scipy import stats

    ops = NumpyOps()
    z = ops.normal(np.random.default_rng(0), (301, 3, 17, 19))  # odd count: the last pair is cut
    assert z.shape == (301, 3, 17, 19) and z.dtype == np.float32
    flat = z.ravel().astype(np.float64)
    # bounds at ≈ 5 standard errors for n = 291,669
    assert abs(flat.mean()) < 0.01 and abs(flat.std() - 1) < 0.007
    assert abs(stats.skew(flat)) < 0.025 and abs(stats.kurtosis(flat)) < 0.05
    assert stats.kstest(flat[:100_000], "norm").pvalue > 0.01
    assert np.abs(flat).max() <= 5.78  # 1 − u ≥ 2⁻²⁴ bounds the radius
    # the two halves (cos and sin of one angle) are uncorrelated
    half = (flat.size + 1) // 2
    n = flat.size - half
    assert abs(np.corrcoef(flat[:n], flat[half : half + n])[0, 1]) < 0.015
    np.testing.assert_array_equal(z, ops.normal(np.random.default_rng(0), (301, 3, 17, 19)))


def test_every_method_has_its_own_random_stream() -> None:
    from onnxplain.blackbox.sampling import STREAMS

    assert len(set(STREAMS.values())) == len(STREAMS), f"two methods share a stream number: {STREAMS}"


def test_numpy_normals_are_the_documented_box_muller_of_float32_uniforms() -> None:
    # z₁ = r cos θ, z₂ = r sin θ, r = √(−2 ln(1 − u₁)), θ = 2π u₂, from 2⌈n/2⌉ float32 uniforms
    # (first half u₁, second half u₂): the stream is part of the contract (seeded maps are reproducible)
    n = 35
    u = np.random.default_rng(5).random(36, dtype=np.float32).astype(np.float64)
    r, theta = np.sqrt(-2 * np.log(1 - u[:18])), 2 * np.pi * u[18:]
    expected = np.concatenate([r * np.cos(theta), r * np.sin(theta)])[:n].reshape(5, 7)
    z = NumpyOps().normal(np.random.default_rng(5), (5, 7))
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-6)


def test_torch_ops_defaults_and_host_conversions() -> None:
    torch = pytest.importorskip("torch")
    ops = TorchOps()
    assert ops.device == torch.device("cpu") and ops.name == "torch"
    np.testing.assert_array_equal(ops.to_numpy(np.arange(3)), [0, 1, 2])  # host arrays pass through
    np.testing.assert_array_equal(ops.to_numpy(torch.arange(3)), [0, 1, 2])
    t = ops.asarray(np.broadcast_to(np.float32(2.0), (2, 2)))  # read-only input
    assert t.dtype == torch.float32 and t.device == torch.device("cpu") and float(t.sum()) == 8.0
    assert ops.asarray(t, np.float64).dtype == torch.float64 and ops.to64([1, 2]).dtype == torch.float64
