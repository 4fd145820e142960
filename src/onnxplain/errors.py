"""Exception types of onnxplain.

Every error a user can cause raises a subclass of :class:`OnnxplainError` with a one-sentence
message; the CLI turns these into a single line and exit code 2. Exceptions that also describe a
plain value problem subclass :class:`ValueError` so that generic handlers still catch them.
"""

from __future__ import annotations


class OnnxplainError(Exception):
    """Base class of every error onnxplain raises on purpose."""


class InvalidInputError(OnnxplainError, ValueError):
    """An explicand, baseline, target or option has the wrong shape, type or value."""


class ModelLoadError(OnnxplainError):
    """A model file is missing, unreadable, not ONNX, or has inputs/outputs we cannot interpret."""


class NonFiniteOutputError(OnnxplainError):
    """The model returned NaN or infinity for some sample of a batch."""


class QueryBudgetExceeded(OnnxplainError):
    """A call would make the model answer more queries than its ``max_queries`` budget allows."""


class DeviceUnavailableError(OnnxplainError):
    """A device (e.g. CUDA) was requested but cannot be used on this machine."""


class UnsafeWeightsError(OnnxplainError):
    """A weights file would need arbitrary objects to be unpickled, which we refuse."""


class RemoteModelError(OnnxplainError):
    """A remote inference endpoint could not be reached or answered with an error."""


class ExportError(OnnxplainError):
    """Exporting a torch module to ONNX failed, or the exported model disagrees with the module."""
