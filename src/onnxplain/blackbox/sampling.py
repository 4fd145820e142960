"""Seeded, streaming perturbations shared by the black-box explainers.

Every explainer draws its perturbations in fixed *blocks* of :data:`BLOCK` queries. Block ``b``
of stream ``s`` comes from its own generator seeded with ``(seed, s, b)``, so

- the perturbation set depends only on the seed (and on the explainer's settings), never on the
  chunk size the model is fed with, nor on the explicand: every explicand of every call sees the
  same perturbations (the "pre-generated mask set" of Cai & Wunder 2024, §3.3);
- any block can be produced on its own, so perturbations are generated chunk by chunk and
  never all held in memory;
- accumulating one partial sum per block, in block order, makes results bitwise identical
  whatever the batch size.

Two array backends produce the blocks: :class:`NumpyOps` (CPU) and :class:`TorchOps` (torch on
the model's device, e.g. ``"cuda:0"``, so that queries are built on the GPU and bound to the ONNX
Runtime session without a host copy). Both are driven by the same explainer code; each is
deterministic under its seed (their streams differ from each other). Torch is imported only
when :class:`TorchOps` is built.

Linear filters (the GEEX noise smoothing, the blur baseline, RISE's up-sampling) live in
:mod:`onnxplain.filters`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from onnxplain.errors import InvalidInputError
from onnxplain.models.base import model_device

BLOCK = 64
"""Queries per generation block (an even number, so that a block holds whole mirror pairs)."""

ArrayBackend = Literal["auto", "numpy", "torch"]

# Independent random streams of one seed (the third SeedSequence key).
STREAMS: dict[str, int] = {
    "geex": 1,
    "ge": 2,
    "rise": 3,
    "lime": 4,
    "sobol": 5,
    "hsic": 6,
    "gefa": 7,
    "kernelshap": 8,
    "partitionshap": 9,
    "geex-path": 10,
}


def block_seed_sequence(seed: int, stream: str, block: int, *key: int) -> np.random.SeedSequence:
    """The seed sequence of block ``block`` of ``stream`` (``key``: further integers that split a
    block's stream, e.g. by the feature count the block is drawn for)."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(STREAMS[stream], int(block), *map(int, key)))


def host_rng(seed: int, stream: str, block: int, *key: int) -> np.random.Generator:
    """A numpy generator (PCG64) for block ``block`` of ``stream`` whatever the array backend: for
    small draws (a design matrix, tie-break keys) that every backend should share bit for bit."""
    return np.random.default_rng(block_seed_sequence(seed, stream, block, *key))


def block_ranges(n: int, block: int = BLOCK) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in blocks of ``block`` (last one shorter)."""
    return [(s, min(s + block, n)) for s in range(0, n, block)]


# -- path positions ---------------------------------------------------------------------------


def path_alphas(
    kind: str, u: np.ndarray, index: np.ndarray, count: int
) -> np.ndarray:
    """Path positions α of the queries (or mirror pairs) ``index`` out of ``count``.

    ``u`` holds one U[0,1) draw per index. ``"stratified"``: α_k = (k + u_k)/count (one draw per
    equal-width stratum of [0,1]); ``"uniform"``: α_k = u_k; ``"reference"``: α_k = k/(2·count − 1),
    the GEEX reference code's ``linspace(0, 1, n*)`` indexed by pair number, which only covers
    [0, ½) (see ``reference/blackbox-methods.md`` P1).
    """
    if kind == "stratified":
        return ((index + u) / count).astype(np.float32)
    if kind == "uniform":
        return u.astype(np.float32)
    if kind == "reference":
        return (index / max(2 * count - 1, 1)).astype(np.float32)
    raise InvalidInputError(f"alpha must be 'stratified', 'uniform' or 'reference', not {kind!r}.")


# -- backends ---------------------------------------------------------------------------------


class NumpyOps:
    """CPU backend: numpy arrays and ``numpy.random.Generator`` (PCG64) per block."""

    name = "numpy"
    device = "cpu"

    def rng(self, seed: int, stream: str, block: int) -> np.random.Generator:
        return host_rng(seed, stream, block)

    def normal(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Standard normals by the Box–Muller transform of float32 uniforms: z₁ = r·cos θ,
        z₂ = r·sin θ with r = √(−2 ln(1 − u₁)), θ = 2π·u₂ (Box & Muller 1958).

        Vectorised and in place, it costs less than half of numpy's ziggurat
        ``standard_normal`` per number (measured per machine in ``benchmarks/README.md``,
        "Gaussian noise cost (Box–Muller)"). ln(1 − u₁) is taken as ``log`` of 1 − u₁, which float32 holds exactly
        (u₁ is a multiple of 2⁻²⁴): numpy's float32 ``log1p`` has no SIMD loop on some CPUs.
        1 − u₁ ∈ [2⁻²⁴, 1] bounds |z| ≤ 5.77: the tail beyond has probability 8·10⁻⁹.
        """
        n = int(np.prod(shape))
        half = (n + 1) // 2
        u = rng.random(2 * half, dtype=np.float32)
        r = u[:half]
        np.subtract(np.float32(1.0), r, out=r)  # exact in float32: u is a multiple of 2⁻²⁴
        np.log(r, out=r)
        r *= -2.0
        np.sqrt(r, out=r)
        theta = u[half:]
        theta *= np.float32(2.0 * np.pi)
        out = np.empty(2 * half, dtype=np.float32)
        np.cos(theta, out=out[:half])
        np.sin(theta, out=out[half:])
        out[:half] *= r
        out[half:] *= r
        return out[:n].reshape(shape)

    def uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.random(n)

    def random(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 block of U[0,1) noise (multiples of 2⁻²⁴)."""
        return rng.random(shape, dtype=np.float32)

    def bernoulli(self, rng: np.random.Generator, p: float, shape: tuple[int, ...]) -> np.ndarray:
        return (rng.random(shape, dtype=np.float32) < p).astype(np.float32)

    def bernoulli_columns(self, rng: np.random.Generator, p: float, rows: int, cols: int) -> np.ndarray:
        """A (rows, cols) 0/1 matrix drawn column after column: its first j columns are the same
        whatever ``cols`` (the generator fills sequentially)."""
        return np.ascontiguousarray(self.bernoulli(rng, p, (cols, rows)).T)

    def integers(self, rng: np.random.Generator, high: int, n: int) -> np.ndarray:
        return rng.integers(0, high, size=n)

    def asarray(self, a: Any, dtype: Any = np.float32) -> np.ndarray:
        return np.asarray(a, dtype=dtype)

    def index(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.int64)

    def take_columns(self, a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``a[:, idx]`` for a 1-D index (``np.take``: about twice as fast as fancy indexing)."""
        return np.take(a, idx, axis=1)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)

    def empty(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.empty(shape, dtype=np.float32)

    def zeros64(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=np.float64)

    def mul_into(self, a: Any, b: Any, out: np.ndarray) -> None:
        np.multiply(a, b, out=out)

    def add_into(self, a: Any, b: Any, out: np.ndarray) -> None:
        np.add(a, b, out=out)

    def sub_into(self, a: Any, b: Any, out: np.ndarray) -> None:
        np.subtract(a, b, out=out)

    def select_into(self, mask: Any, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        """``out = a where mask else b`` (bool ``mask``, broadcasting): every element is exactly a
        or b. Selected on the float32 bit patterns, out = b ^ ((a ^ b) & −mask), which is
        several times faster than ``np.copyto(where=)`` and exact (no a − b rounding)."""
        flip = np.bitwise_xor(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))
        bits = out.view(np.uint32)
        ones = np.asarray(mask).astype(np.uint32)
        np.negative(ones, out=ones)  # 0 or 0xFFFFFFFF
        np.bitwise_and(ones, flip, out=bits)
        np.bitwise_xor(bits, np.asarray(b, np.float32).view(np.uint32), out=bits)

    def to64(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64)


class TorchOps:
    """Device backend: torch tensors on ``device`` and one ``torch.Generator`` per block.

    Used for CUDA models (queries are built where the model runs and bound to the session);
    the same code runs on ``device="cpu"`` in the tests.
    """

    name = "torch"

    def __init__(self, device: str = "cpu") -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)

    def rng(self, seed: int, stream: str, block: int) -> Any:
        state = block_seed_sequence(seed, stream, block).generate_state(1, dtype=np.uint64)[0]
        gen = self.torch.Generator(device=self.device)
        gen.manual_seed(int(state >> np.uint64(1)))
        return gen

    def normal(self, rng: Any, shape: tuple[int, ...]) -> Any:
        return self.torch.randn(shape, generator=rng, device=self.device, dtype=self.torch.float32)

    def uniform(self, rng: Any, n: int) -> np.ndarray:
        # α stays on the host in float64 (it is tiny); drawn from the block's device generator.
        u = self.torch.rand(n, generator=rng, device=self.device, dtype=self.torch.float64)
        return u.cpu().numpy()

    def random(self, rng: Any, shape: tuple[int, ...]) -> Any:
        """A float32 block of U[0,1) noise on the device."""
        return self.torch.rand(shape, generator=rng, device=self.device, dtype=self.torch.float32)

    def bernoulli(self, rng: Any, p: float, shape: tuple[int, ...]) -> Any:
        u = self.torch.rand(shape, generator=rng, device=self.device, dtype=self.torch.float32)
        return (u < p).to(self.torch.float32)

    def bernoulli_columns(self, rng: Any, p: float, rows: int, cols: int) -> Any:
        return self.bernoulli(rng, p, (cols, rows)).T.contiguous()

    def integers(self, rng: Any, high: int, n: int) -> Any:
        return self.torch.randint(0, high, (n,), generator=rng, device=self.device)

    def asarray(self, a: Any, dtype: Any = np.float32) -> Any:
        tdtype = {np.float32: self.torch.float32, np.float64: self.torch.float64, np.bool_: self.torch.bool}[
            np.dtype(dtype).type
        ]
        if isinstance(a, self.torch.Tensor):
            return a.to(device=self.device, dtype=tdtype)
        arr = np.asarray(a, dtype=dtype)
        if not arr.flags.writeable:  # e.g. a broadcast baseline: torch warns on read-only memory
            arr = arr.copy()
        return self.torch.as_tensor(arr, device=self.device)

    def index(self, a: Any) -> Any:
        if isinstance(a, self.torch.Tensor):
            return a.to(device=self.device, dtype=self.torch.int64)
        return self.torch.as_tensor(np.asarray(a, dtype=np.int64), device=self.device)

    def take_columns(self, a: Any, idx: Any) -> Any:
        return a.index_select(1, idx)

    def to_numpy(self, a: Any) -> np.ndarray:
        if isinstance(a, self.torch.Tensor):
            return a.detach().cpu().numpy()
        return np.asarray(a)

    def empty(self, shape: tuple[int, ...]) -> Any:
        return self.torch.empty(shape, dtype=self.torch.float32, device=self.device)

    def zeros64(self, shape: tuple[int, ...]) -> Any:
        return self.torch.zeros(shape, dtype=self.torch.float64, device=self.device)

    def mul_into(self, a: Any, b: Any, out: Any) -> None:
        self.torch.mul(a, b, out=out)

    def add_into(self, a: Any, b: Any, out: Any) -> None:
        self.torch.add(a, b, out=out)

    def sub_into(self, a: Any, b: Any, out: Any) -> None:
        self.torch.sub(a, b, out=out)

    def select_into(self, mask: Any, a: Any, b: Any, out: Any) -> None:
        self.torch.where(mask, a, b, out=out)

    def to64(self, a: Any) -> Any:
        return self.asarray(a, np.float64)


Ops = NumpyOps | TorchOps


def select_backend(backend: str, model: Any) -> Ops:
    """``"numpy"``, ``"torch"`` (on the model's device) or ``"auto"`` (torch only for CUDA models)."""
    device = model_device(model)
    if backend == "auto":
        backend = "torch" if device.startswith("cuda") else "numpy"
    if backend == "numpy":
        return NumpyOps()
    if backend == "torch":
        return TorchOps(device)
    raise InvalidInputError(f"array_backend must be 'auto', 'numpy' or 'torch', not {backend!r}.")
