"""Device names, parsed once: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``.

ONNX Runtime sessions (:mod:`onnxplain.models.onnx`) and torch modules (:mod:`onnxplain.gradients`,
:mod:`onnxplain.models.torch`) check availability their own way; the syntax and its error
sentence live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onnxplain.errors import InvalidInputError


@dataclass(frozen=True)
class DeviceSpec:
    """``kind`` is ``"auto"``, ``"cpu"`` or ``"cuda"``; ``index`` the CUDA ordinal (None: default)."""

    kind: str
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def parse_device(device: Any) -> DeviceSpec:
    """Parse a device name (a ``torch.device`` is accepted too)."""
    text = str(device) if device is not None else ""
    if text in ("auto", "cpu", "cuda"):
        return DeviceSpec(text)
    kind, sep, index = text.partition(":")
    if kind == "cuda" and sep and index.isdigit():
        return DeviceSpec("cuda", int(index))
    raise InvalidInputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', not {device!r}.")


def torch_device(device: Any) -> Any:
    """A device name as a ``torch.device``: ``"auto"`` is CUDA when torch sees a GPU, else the CPU;
    a CUDA device that torch cannot use is refused with :class:`DeviceUnavailableError`."""
    import torch

    from onnxplain.errors import DeviceUnavailableError

    spec = parse_device(device)
    if spec.kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(str(spec))
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                f"device {str(device)!r} was requested but CUDA is not available to torch here; use --device cpu."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {str(device)!r} does not exist: torch sees {torch.cuda.device_count()} CUDA device(s)."
            )
    return dev
