"""What every chunk goes through on its way from the explainer's pixel space into a model.

Explicands, perturbations and maps live in float32 RGB [0,1] CHW pixels. On the way in, an adapter
(:meth:`~onnxplain.models.base.BaseQueryModel.prepare_chunk`) reverses the channels for a BGR
model (:func:`reverse_channels`), normalises (:class:`Normalize`) and, in the runtime adapter,
converts to the model's input type (:func:`convert_input`). Each works on numpy arrays and on
torch device tensors alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from onnxplain.errors import InvalidInputError

INPUT_DTYPES: tuple[str, ...] = ("float32", "float16", "float64", "uint8")
"""Model input types an adapter can feed from float32 [0,1] pixels."""


@dataclass(frozen=True)
class Normalize:
    """Per-channel normalisation ``(x - mean) / std`` applied to [0,1] pixels before the model.

    Lets explainers work in [0,1] CHW pixel space for a model that expects normalised input.
    ``mean`` and ``std`` are given **in the model's channel order**: for a model declared with
    ``channel_order="BGR"`` the channels are reversed first, so the first value is blue's.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in np.atleast_1d(self.mean))
        std = tuple(float(v) for v in np.atleast_1d(self.std))
        if len(mean) != len(std):
            raise InvalidInputError(f"mean has {len(mean)} values but std has {len(std)}.")
        if any(s <= 0 or not math.isfinite(s) for s in std):
            raise InvalidInputError("every std value must be positive and finite.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def check_channels(self, channels: int) -> None:
        if len(self.mean) not in (1, channels):
            raise InvalidInputError(
                f"Normalize has {len(self.mean)} channel values but the model takes {channels} channels."
            )

    def __call__(self, batch: Any) -> Any:
        """Normalise a numpy array or a device tensor (torch), keeping its type and device."""
        shape = (1, -1) + (1,) * (batch.ndim - 2)
        mean = np.asarray(self.mean, np.float32).reshape(shape)
        std = np.asarray(self.std, np.float32).reshape(shape)
        if not isinstance(batch, np.ndarray):
            mean, std = batch.new_tensor(mean), batch.new_tensor(std)
        return (batch - mean) / std

    def describe(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


def reverse_channels(batch: Any) -> Any:
    """(N, C, ...) with the channel axis reversed (RGB ↔ BGR), for numpy arrays and torch tensors."""
    if isinstance(batch, np.ndarray):
        return np.ascontiguousarray(batch[:, ::-1])
    return batch.flip(1)


def convert_input(batch: Any, dtype: np.dtype) -> Any:
    """A chunk of [0,1] pixels (numpy, or a torch tensor) as a model input of type ``dtype``.

    ``uint8``: ``round(255·x)`` clipped to 0..255 (grey levels; values off [0,1] saturate);
    float types: a plain cast (float16 rounds to its 11-bit mantissa).
    """
    dtype = np.dtype(dtype)
    if isinstance(batch, np.ndarray):
        if dtype != np.uint8:
            return np.ascontiguousarray(batch, dtype=dtype)
        levels = np.rint(np.asarray(batch, np.float32) * np.float32(255))
        return np.clip(levels, 0, 255, out=levels).astype(np.uint8)
    import torch  # a tensor was given, so torch is already imported

    if dtype != np.uint8:
        return batch.to(torch_dtype_of(dtype))  # strides kept: the IO-binding copy handles them
    return (batch.float() * 255).round_().clamp_(0, 255).to(torch.uint8)


def torch_dtype_of(dtype: np.dtype) -> Any:
    """The torch dtype of one of :data:`INPUT_DTYPES` (imports torch)."""
    import torch

    table = {"uint8": torch.uint8, "float16": torch.float16, "float32": torch.float32, "float64": torch.float64}
    return table[np.dtype(dtype).name]


def input_conversion(dtype: np.dtype) -> str:
    """How :func:`convert_input` turns [0,1] float32 pixels into ``dtype`` (for ``describe()``)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return "uint8 grey levels round(255·x) clipped to 0..255 (one level = 1/255 of the [0,1] range)"
    if dtype == np.float32:
        return "none (float32 as given)"
    return f"cast to {dtype.name}"


def input_quantum_of(dtype: np.dtype) -> float:
    """The smallest change of a [0,1] pixel that reaches a model taking ``dtype``: 1/255 for uint8
    (a smaller one rounds to the same grey level), else 0 (treated as continuous)."""
    return 1.0 / 255.0 if np.dtype(dtype) == np.uint8 else 0.0
