"""What every white-box method needs once: input conversion, targets, per-sample gradients,
counting, timing and the :class:`~onnxplain.explanation.Explanation` it returns.

Conventions shared by all methods of :mod:`onnxplain.gradients`:

- ``model`` is a ``torch.nn.Module`` mapping (N, C, H, W) explicands to (N, K) class scores
  (logits); put it in eval mode (dropout or batch-norm in training mode make gradients depend
  on the batch).
- The explained scalar of sample n is ``h(f(x_n))[y_n]`` with the head ``h`` = softmax
  (``output="probs"``, one softmax, as the reference codes) or the identity (``"logits"``).
- Gradients are taken of ``Σ_n h(f(x_n))[y_n]`` where every term is a *per-sample gather*:
  because sample n's term depends only on x_n, ∂/∂x_n of the sum is ∂h(f(x_n))[y_n]/∂x_n, so an
  explicand's attribution never depends on what else is in the batch (unlike the
  ``out[:, idx].sum()`` of the AGI/LA reference copies, ``reference/whitebox-methods.md`` §2).
- ``n_queries`` counts samples forwarded, ``n_backward`` samples back-propagated (one per sample
  and gradient taken), ``model_seconds`` the time spent inside forward and backward passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from onnxplain.checks import (
    check_choice,
    check_float_array,
    check_optional_positive_int,
    check_targets,
)
from onnxplain.devices import parse_device, torch_device
from onnxplain.errors import InvalidInputError, NonFiniteOutputError
from onnxplain.explanation import Explanation

Output = Literal["probs", "logits"]
MemoryFormat = Literal["auto", "channels_last", "preserve"]
MEMORY_FORMATS: tuple[str, ...] = ("auto", "channels_last", "preserve")
TargetLike = int | Sequence[int] | np.ndarray | torch.Tensor | None
InputLike = np.ndarray | torch.Tensor

AUTO_BATCH_ELEMENTS = 2**23
"""``batch_size=None`` streams about this many input elements per forward/backward pass."""
MAX_AUTO_BATCH = 1024


def auto_batch_size(sample_numel: int) -> int:
    """Samples per pass when ``batch_size=None``: ≈ 8.4 M input values (55 at 3×224×224,
    1024 at 1×28×28), so memory stays bounded and small inputs still fill a batch."""
    return int(min(MAX_AUTO_BATCH, max(1, AUTO_BATCH_ELEMENTS // max(1, sample_numel))))


def check_output(output: str) -> Output:
    return check_choice("output", output, ("probs", "logits"))  # type: ignore[return-value]


# -- devices, dtypes, inputs ----------------------------------------------------------------------


def resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """``None``: the device of the model's parameters (CPU for a parameter-free module).

    An explicit device moves the module there (``nn.Module.to`` works in place).
    """
    if device is None:
        for tensor in _tensors_of(model):
            return tensor.device
        return torch.device("cpu")
    dev = torch_device(device)
    model.to(dev)
    return dev


def _tensors_of(model: nn.Module) -> Any:
    yield from model.parameters()
    yield from model.buffers()


def model_dtype(model: nn.Module, x: InputLike) -> torch.dtype:
    """The floating dtype gradients are computed in: the model's, else float64 input stays float64."""
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    if isinstance(x, torch.Tensor):
        return x.dtype if x.dtype == torch.float64 else torch.float32
    return torch.float64 if getattr(x, "dtype", None) == np.float64 else torch.float32


def as_batch_tensor(x: InputLike, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
    """``(batch, single)``: ``x`` (C,H,W) or (B,C,H,W) as a detached (B,C,H,W) tensor on ``device``.

    ``x`` must hold floats (:func:`~onnxplain.checks.check_float_array`); read-only and strided
    arrays are copied.
    """
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise InvalidInputError(f"x must be a floating-point tensor, got {x.dtype}.")
        t = x.detach()
    else:
        arr = check_float_array("x", x, dtype=None)
        if not (arr.flags.writeable and arr.flags.c_contiguous):
            arr = np.array(arr, order="C")  # torch.from_numpy wants a writable array
        t = torch.from_numpy(arr)
    if t.ndim == 3:
        t, single = t.unsqueeze(0), True
    elif t.ndim == 4:
        single = False
    else:
        raise InvalidInputError(
            f"x must be one image (C,H,W) or a batch (B,C,H,W), got an array of shape {tuple(t.shape)}."
        )
    if t.shape[0] == 0 or any(d == 0 for d in t.shape[1:]):
        raise InvalidInputError(f"x must not be empty, got shape {tuple(t.shape)}.")
    t = t.to(device=device, dtype=dtype).contiguous()
    if not bool(torch.isfinite(t).all()):
        raise InvalidInputError("x contains NaN or infinite values.")
    return t, single


def check_in_bounds(x: torch.Tensor, bounds: tuple[float, float], method: str) -> None:
    lo, hi = bounds
    xmin, xmax = float(x.min()), float(x.max())
    if xmin < lo or xmax > hi:
        raise InvalidInputError(
            f"{method} clamps its path to bounds=({lo:g}, {hi:g}) but x spans [{xmin:.4g}, {xmax:.4g}]: "
            "pass pixels in that range (put the normalisation inside the model) or set bounds."
        )


def targets_tensor(target: TargetLike, n: int, device: torch.device) -> torch.Tensor | None:
    """Validate an explicit target (an int or one per explicand); ``None`` stays ``None``.

    The upper bound (the model's class count) is checked by :class:`Runner` on the first forward.
    """
    t = check_targets(target, n)
    return None if t is None else torch.from_numpy(t).to(device)


# -- the module during a call ---------------------------------------------------------------------


def wants_channels_last(model: nn.Module, dtype: torch.dtype, memory_format: str) -> bool:
    """Whether a call runs the module in channels-last layout.

    ``"auto"``: when the module holds a 4-D floating weight (a 2-D convolution) and computes in
    float32, float16 or bfloat16. On CPU oneDNN's channels-last convolutions run the same passes
    in 0.57–0.85 of the time of the default layout (``benchmarks/README.md``, white-box section);
    float64 has no oneDNN kernels, so it keeps the default layout.
    """
    if memory_format == "preserve":
        return False
    if memory_format == "channels_last":
        return True
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    return any(p.ndim == 4 and p.is_floating_point() for p in model.parameters())


def _nhwc_strides(shape: torch.Size) -> tuple[int, int, int, int]:
    _, c, h, w = shape
    return (c * h * w, 1, w * c, c)


class PreparedModule:
    """For the duration of one call: parameters frozen and, optionally, 4-D tensors channels-last.

    Only input gradients are ever taken, so ``requires_grad`` is switched off on the parameters
    (autograd then records no weight-gradient paths); with ``channels_last`` every 4-D parameter
    and buffer is re-laid out (same values, other strides). :meth:`restore` (run on exit, also
    after an error) puts back the very tensors and flags the module had.
    """

    def __init__(self, model: nn.Module, channels_last: bool) -> None:
        self.model = model
        self.channels_last = channels_last
        self._flags: list[tuple[nn.Parameter, bool]] = []
        self._layouts: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __enter__(self) -> PreparedModule:
        for p in self.model.parameters():
            self._flags.append((p, p.requires_grad))
            p.requires_grad_(False)
        if self.channels_last:
            for t in _tensors_of(self.model):
                if t.ndim == 4 and t.is_floating_point() and t.stride() != _nhwc_strides(t.shape):
                    self._layouts.append((t, t.data))
                    # clone, not .contiguous(): with a size-1 channel (greyscale) the NCHW strides
                    # count as channels-last too, and oneDNN would then mix layouts
                    t.data = t.data.clone(memory_format=torch.channels_last)
        return self

    def drop_channels_last(self) -> None:
        """Back to the module's own layout (the model cannot run channels-last, e.g. ``.view``)."""
        for t, original in self._layouts:
            t.data = original
        self._layouts.clear()
        self.channels_last = False

    def restore(self) -> None:
        self.drop_channels_last()
        for p, flag in self._flags:
            p.requires_grad_(flag)
        self._flags.clear()

    def __exit__(self, *exc: object) -> None:
        self.restore()


# -- the gradient engine --------------------------------------------------------------------------


def sum_groups(g: torch.Tensor, n_groups: int) -> torch.Tensor:
    """``Σ_k g[n·K + k]`` for n < ``n_groups`` (K = len(g) / n_groups): a (n_groups, *g.shape[1:]) sum.

    Reduces in g's own memory order. A module run channels-last hands back channels-last input
    gradients, and summing those across their NCHW view reads with strides: several times slower
    for the same values, bit for bit (``benchmarks/README.md``, "Channels-last layout and gradient
    sums").
    """
    if g.ndim == 4 and not g.is_contiguous() and g.is_contiguous(memory_format=torch.channels_last):
        nhwc = g.permute(0, 2, 3, 1)
        return nhwc.reshape(n_groups, -1, *nhwc.shape[1:]).sum(dim=1).permute(0, 3, 1, 2)
    return g.reshape(n_groups, -1, *g.shape[1:]).sum(dim=1)


def gather(scores: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``scores[n, idx[n]]`` for every n: the per-sample gather (never ``scores[:, idx].sum()``)."""
    return scores.gather(1, idx.view(-1, 1)).squeeze(1)


@dataclass
class Runner:
    """Runs a module forward/backward on chunks, applying the output head and counting.

    One ``Runner`` lives for one ``explain`` call.
    """

    model: nn.Module
    output: Output
    device: torch.device
    dtype: torch.dtype
    batch_size: int
    n_forward: int = 0
    n_backward: int = 0
    model_seconds: float = 0.0
    num_classes: int = field(default=-1)
    target_max: int | None = None
    prepared: PreparedModule | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _call(self, x: torch.Tensor) -> Any:
        prepared = self.prepared
        if prepared is None or not prepared.channels_last:
            return self.model(x)
        try:
            return self.model(x.contiguous(memory_format=torch.channels_last))
        except RuntimeError:
            if self.n_forward:  # channels-last ran before: this error is the model's own
                raise
            # e.g. ``x.view(n, -1)`` after a convolution needs the default layout
            prepared.drop_channels_last()
            return self.model(x.contiguous())

    def _chunk_format(self, ndim: int) -> torch.memory_format:
        prepared = self.prepared
        if ndim == 4 and prepared is not None and prepared.channels_last:
            return torch.channels_last
        return torch.contiguous_format

    def empty_chunk(self, shape: tuple[int, ...]) -> torch.Tensor:
        """An uninitialised input chunk in the layout the module runs in (channels-last for a
        4-D chunk when the call runs channels-last, else the default layout).

        A method that writes its points into it (``out=``) spares the layout copy of every chunk
        on the way into the module; with operands in the same layout (:meth:`in_layout`) the
        write runs in memory order (``benchmarks/README.md``, "Channels-last layout and gradient
        sums").
        """
        return torch.empty(shape, dtype=self.dtype, device=self.device, memory_format=self._chunk_format(len(shape)))

    def in_layout(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (e.g. the explicands) in the layout of :meth:`empty_chunk`."""
        return t.contiguous(memory_format=self._chunk_format(t.ndim))

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self._call(x)
        except RuntimeError as exc:
            if self.n_forward or isinstance(exc, torch.cuda.OutOfMemoryError):
                raise
            # the first forward: a module declares no input shape, so a wrong one shows here
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InvalidInputError(
                f"the model cannot run on explicands of shape {tuple(x.shape[1:])}: {first}"
            ) from exc
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidInputError(
                f"the model must return (N, num_classes) scores for N inputs; got {shape} for N={x.shape[0]}."
            )
        self.num_classes = int(out.shape[1])
        if self.target_max is not None and self.target_max >= self.num_classes:
            raise InvalidInputError(
                f"target {self.target_max} is out of range for a model with {self.num_classes} classes."
            )
        self.n_forward += int(x.shape[0])
        return out

    def head(self, raw: torch.Tensor) -> torch.Tensor:
        """softmax (``"probs"``, applied once) or identity (``"logits"``)."""
        return torch.softmax(raw, dim=1) if self.output == "probs" else raw

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Head scores (N, K) of ``x`` without gradients, in chunks of :attr:`batch_size`."""
        batch_size = self.batch_size
        parts = []
        self._sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            for s in range(0, x.shape[0], batch_size):
                parts.append(self.head(self._raw(x[s : s + batch_size])))
        self._sync()
        self.model_seconds += time.perf_counter() - t0
        out = torch.cat(parts)
        if not bool(torch.isfinite(out).all()):
            raise NonFiniteOutputError("the model returned non-finite scores for the explicand.")
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(raw, head)`` of one chunk with the graph kept, for :meth:`grad_of`."""
        self._sync()
        t0 = time.perf_counter()
        raw = self._raw(x)
        head = self.head(raw)
        self._sync()
        self.model_seconds += time.perf_counter() - t0
        return raw, head

    def grad_of(
        self, value: torch.Tensor, x: torch.Tensor, n_rows: int, *, retain_graph: bool = False
    ) -> torch.Tensor:
        """∂(Σ value)/∂x for a sum of per-sample terms; counts ``n_rows`` backward samples."""
        self._sync()
        t0 = time.perf_counter()
        (g,) = torch.autograd.grad(value.sum(), x, retain_graph=retain_graph)
        self._sync()
        self.model_seconds += time.perf_counter() - t0
        self.n_backward += int(n_rows)
        return g

    def grad(
        self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_n·∂h(f(x_n))[y_n]/∂x_n, h(f(x_n))[y_n])`` for one chunk: one forward, one backward.

        ``weight`` (one per row, default 1) scales each row's gradient inside the backward pass.
        """
        x = x.detach().requires_grad_(True)
        _, head = self.forward(x)
        value = gather(head, target)
        g = self.grad_of(value if weight is None else value * weight, x, x.shape[0])
        return g, value.detach()


# -- the explain() template -----------------------------------------------------------------------


@dataclass
class Result:
    """What a method's core returns to :meth:`GradientMethod.explain`."""

    attributions: torch.Tensor
    score: torch.Tensor | None = None
    baseline_score: torch.Tensor | None = None
    params: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)


class GradientMethod:
    """Base of the white-box explainers: configuration in ``__init__``, one :meth:`explain` call.

    Subclasses set :attr:`name` and implement :meth:`_attribute`.
    """

    name: ClassVar[str] = ""
    budget_param: ClassVar[str | None] = None
    """The constructor argument that sets the method's cost (steps or samples; what ``--steps``
    sets), or None for a single-gradient method."""
    signed_map: ClassVar[bool] = True
    """Gradient attributions are signed contributions (see :func:`onnxplain.registry.is_signed`)."""
    seeded: ClassVar[bool] = False
    """Whether the method draws random numbers (and takes a ``seed``)."""
    uses_baseline: ClassVar[bool] = False
    """Whether the method takes a ``baseline`` x̂ (parsed by :class:`~onnxplain.baselines.Baseline`)."""
    bounds: tuple[float, float] | None = None
    needs_scores: bool = True
    """False for methods that read f(x) off their own passes: given an explicit target they skip
    the separate forward of x (a method then returns ``Result.score``)."""

    def __init__(
        self,
        *,
        output: Output = "probs",
        device: str | None = None,
        batch_size: int | None = None,
        memory_format: MemoryFormat = "auto",
    ) -> None:
        """``batch_size=None`` picks :func:`auto_batch_size` from the explicand's size;
        ``memory_format`` see :func:`wants_channels_last` and :class:`PreparedModule`."""
        self.output = check_output(output)
        if device is not None:
            parse_device(device)  # the name now; whether the device exists when explaining
        self.device = device
        self.batch_size = check_optional_positive_int("batch_size", batch_size)
        self.memory_format = check_choice("memory_format", memory_format, MEMORY_FORMATS)

    def params(self) -> dict[str, Any]:
        """Hyper-parameters recorded in every Explanation (subclasses extend)."""
        return {"output": self.output}

    def _check_input(self, x: torch.Tensor) -> None:
        """Method-specific checks of the explicand batch (default: inside :attr:`bounds`, if set)."""
        if self.bounds is not None:
            check_in_bounds(x, self.bounds, type(self).__name__)

    def _attribute(
        self, run: Runner, x: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor | None
    ) -> Result:
        """The method's core. ``scores`` are the head scores (B, K) of x, or ``None`` when the
        method declared it does not need them and the target was given."""
        raise NotImplementedError

    def explain(self, model: nn.Module, x: InputLike, target: TargetLike = None) -> Explanation:
        """Attributions of ``x`` (one (C,H,W) explicand or a (B,C,H,W) batch) for ``target``.

        ``target=None`` explains the model's prediction on x (argmax of its scores); an int or a
        per-explicand sequence is also accepted.
        """
        if not isinstance(model, nn.Module):
            raise InvalidInputError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        t0 = time.perf_counter()
        device = resolve_device(model, self.device)
        dtype = model_dtype(model, x)
        xb, single = as_batch_tensor(x, device, dtype)
        declared = getattr(model, "input_shape", None)  # e.g. PixelSpaceModel's
        if isinstance(declared, tuple) and tuple(xb.shape[1:]) != tuple(declared):
            raise InvalidInputError(f"the model takes explicands of shape {declared}, got {tuple(xb.shape[1:])}.")
        self._check_input(xb)
        batch_size = self.batch_size or auto_batch_size(xb[0].numel())
        explicit = targets_tensor(target, xb.shape[0], device)
        with PreparedModule(model, wants_channels_last(model, dtype, self.memory_format)) as prepared:
            run = Runner(
                model,
                self.output,
                device,
                dtype,
                batch_size,
                target_max=None if explicit is None else int(explicit.max()),
                prepared=prepared,
            )
            scores = run.scores(xb) if (explicit is None or self.needs_scores) else None
            targets = explicit if explicit is not None else scores.argmax(dim=1)  # type: ignore[union-attr]
            res = self._attribute(run, xb, targets, scores)
            channels_last = prepared.channels_last
        if not bool(torch.isfinite(res.attributions).all()):
            raise NonFiniteOutputError(f"{self.name}: the gradients of the model are not finite.")
        if res.score is not None:
            score = res.score
        elif scores is not None:
            score = gather(scores, targets)
        else:  # pragma: no cover - a method bug, not a user error
            raise RuntimeError(f"{self.name} skipped the forward of x but returned no score")

        def out(v: torch.Tensor) -> float | np.ndarray:
            arr = v.detach().to("cpu", torch.float64).numpy()
            return float(arr[0]) if single else arr

        attributions = res.attributions.detach().contiguous().cpu().numpy()  # NCHW, as given
        target_out: int | np.ndarray = targets.cpu().numpy().astype(np.int64)
        if single:
            attributions = attributions[0]
            target_out = int(target_out[0])
        diagnostics = {
            k: (float(np.asarray(v).reshape(-1)[0]) if single and np.ndim(v) == 1 else v)
            for k, v in res.diagnostics.items()
        }
        params = {
            **self.params(),
            "device": str(device),
            "dtype": str(dtype).replace("torch.", ""),
            "batch_size": batch_size,
            "memory_format": "channels_last" if channels_last else "preserve",
            **res.params,
        }
        return Explanation(
            attributions=attributions,
            method=self.name,
            target=target_out,
            score=out(score),
            baseline_score=None if res.baseline_score is None else out(res.baseline_score),
            params=params,
            n_queries=run.n_forward,
            n_backward=run.n_backward,
            seconds=time.perf_counter() - t0,
            model_seconds=run.model_seconds,
            diagnostics=diagnostics,
        )


def torch_generator(seed_sequence: np.random.SeedSequence, device: torch.device) -> torch.Generator:
    """A torch generator on ``device`` seeded from a numpy SeedSequence (no global RNG)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed_sequence.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    return gen
