"""How :class:`~onnxplain.models.remote.RemoteModel` is configured: its arguments checked before
anything is sent, and what it needs to know about the served tensors, from the options the user
gave and, for what they did not give, from the model metadata.

A server may publish full metadata (Triton, KServe, :class:`~onnxplain.serving.V2Server`), empty
lists (MLServer without declared tensors), partial entries, or none at all: every field the user
supplies is taken as given (and checked against the metadata where the metadata has it), every
field missing from both is an error naming the option and the CLI flag that supply it.
"""

from __future__ import annotations

import inspect
import numbers
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from onnxplain.checks import (
    check_nonnegative_float,
    check_optional_positive_int,
    check_positive_float,
    check_positive_int,
)
from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.serving.protocol import DEFAULT_DATATYPE, FLOAT_DATATYPES

__all__ = [
    "OPTION_FLAGS",
    "WireTensors",
    "check_arguments",
    "check_remote_options",
    "needs_metadata",
    "resolve_tensors",
    "supply",
]

OPTION_FLAGS = {
    "input_name": "--input-name NAME",
    "output_name": "--output-name NAME",
    "input_shape": "--input-shape C,H,W",
    "num_classes": "--num-classes N",
}
"""The RemoteModel options that replace metadata, and the command-line flags that set them."""


def supply(option: str, verb: str = "pass") -> str:
    """``"pass input_shape= (CLI: --input-shape C,H,W)"``: how the user supplies a missing field."""
    return f"{verb} {option}= (CLI: {OPTION_FLAGS[option]})"


def needs_metadata(**given: Any) -> list[str]:
    """The options of :data:`OPTION_FLAGS` the user left at ``None`` (what the metadata must give)."""
    return [name for name in OPTION_FLAGS if given.get(name) is None]


@dataclass(frozen=True)
class WireTensors:
    """The input and output tensors as the client will use them.

    ``batch_dim``: the input's leading axis (``-1`` dynamic or unknown, else a fixed batch);
    ``wire_shape``: one sample as sent (HWC for NHWC); ``sample_shape``: one explicand (CHW);
    ``datatype_declared``: whether the metadata named the input datatype (else FP32 is assumed).
    """

    input_name: str
    output_name: str
    datatype: str
    datatype_declared: bool
    batch_dim: int
    wire_shape: tuple[int, ...]
    sample_shape: tuple[int, ...]
    num_classes: int


def resolve_tensors(
    meta: Any,
    url: str,
    *,
    input_name: str | None,
    output_name: str | None,
    input_shape: Sequence[int] | None,
    num_classes: int | None,
    layout: str,
) -> WireTensors:
    """Combine the user's options with the metadata document ``meta`` (``None``: the server has none)."""
    meta = meta if isinstance(meta, dict) else {}
    inp = _pick(meta.get("inputs"), input_name, "input", url)
    out = _pick(meta.get("outputs"), output_name, "output", url)
    name_in, name_out = str(inp["name"]), str(out["name"])
    datatype = inp.get("datatype")
    if datatype is not None and datatype not in FLOAT_DATATYPES:
        raise ModelLoadError(
            f"input {name_in!r} of {url} has datatype {datatype!r}; onnxplain sends {', '.join(FLOAT_DATATYPES)} only."
        )
    batch_dim, wire = _input_shape(inp, input_shape, layout, url)
    return WireTensors(
        input_name=name_in,
        output_name=name_out,
        datatype=str(datatype or DEFAULT_DATATYPE),
        datatype_declared=datatype is not None,
        batch_dim=batch_dim,
        wire_shape=wire,
        sample_shape=from_wire_shape(wire, layout),
        num_classes=_num_classes(out, num_classes, url),
    )


def _pick(tensors: Any, name: str | None, kind: str, url: str) -> dict[str, Any]:
    """The metadata entry of the tensor to use (``{"name": name}`` when the metadata lists none)."""
    entries = [t for t in tensors if isinstance(t, dict)] if isinstance(tensors, list) else []
    names = [str(t.get("name")) for t in entries]
    if name is None:
        if len(entries) == 1 and entries[0].get("name"):
            return entries[0]
        if not entries:
            raise ModelLoadError(f"the metadata at {url} lists no {kind}s; {supply(kind + '_name')}.")
        raise ModelLoadError(
            f"{url} has {len(entries)} {kind}s ({', '.join(names)}); {supply(kind + '_name', 'choose one with')}."
        )
    for t in entries:
        if t.get("name") == name:
            return t
    if entries:
        raise ModelLoadError(f"{url} has no {kind} named {name!r} (it has {', '.join(names)}).")
    return {"name": name}


def _input_shape(
    entry: dict[str, Any], input_shape: Sequence[int] | None, layout: str, url: str
) -> tuple[int, tuple[int, ...]]:
    """``(batch_dim, wire sample shape)`` from the metadata and/or ``input_shape``."""
    shape = entry.get("shape")
    name = entry["name"]
    if shape is not None and (
        not isinstance(shape, list) or not all(isinstance(d, int) for d in shape) or len(shape) == 1
    ):
        raise ModelLoadError(
            f"input {name!r} of {url} has shape {shape}; a leading batch axis and at least one sample "
            "axis are required."
        )
    known = bool(shape)
    batch_dim, wire = (shape[0], list(shape[1:])) if known else (-1, [])
    if input_shape is not None:
        sample = tuple(int(d) for d in input_shape)
        want = to_wire_shape(sample, layout)
        if known and (len(want) != len(wire) or any(w not in (-1, d) for w, d in zip(wire, want, strict=True))):
            raise InvalidInputError(f"input_shape {sample} does not fit the server's input shape {shape} ({layout}).")
        return batch_dim, want
    if not known:
        raise ModelLoadError(f"the metadata at {url} gives no shape for input {name!r}; {supply('input_shape')}.")
    if any(d < 1 for d in wire):
        raise ModelLoadError(f"input {name!r} of {url} has dynamic axes {shape}; {supply('input_shape')}.")
    return batch_dim, tuple(wire)


def _num_classes(entry: dict[str, Any], num_classes: int | None, url: str) -> int:
    shape = entry.get("shape")
    static = shape[-1] if isinstance(shape, list) and shape and isinstance(shape[-1], int) and shape[-1] > 0 else None
    if num_classes is None:
        if static is None:
            raise ModelLoadError(
                f"output {entry['name']!r} of {url} has shape {shape} with no static class axis; "
                f"{supply('num_classes')}."
            )
        return int(static)
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 1:
        raise InvalidInputError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if static is not None and static != num_classes:
        raise InvalidInputError(f"num_classes={num_classes} does not fit the server's output shape {shape}.")
    return int(num_classes)


def to_wire_shape(sample: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """One explicand's shape (C,H,W) as the server takes it ((H,W,C) for NHWC)."""
    if layout == "NHWC" and len(sample) == 3:
        c, h, w = sample
        return (h, w, c)
    return sample


def from_wire_shape(wire: Sequence[int], layout: str) -> tuple[int, ...]:
    """The inverse of :func:`to_wire_shape`."""
    wire = tuple(wire)
    if layout == "NHWC":
        if len(wire) != 3:
            raise InvalidInputError(f"layout 'NHWC' needs a (N,H,W,C) input, the server has {wire}.")
        h, w, c = wire
        return (c, h, w)
    return wire


def check_arguments(
    url: str,
    model_name: str,
    layout: str,
    timeout: float,
    retries: int,
    backoff: float,
    backoff_max: float,
    concurrency: int,
    max_batch_size: int | None,
    binary: Any,
    batch_size: int | None,
    ends_in_softmax: Any,
    headers: Any = None,
) -> None:
    """Validate RemoteModel's arguments before anything is sent (one sentence per bad value)."""
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInputError(f"{url!r} is not an http(s) URL.")
    if not isinstance(model_name, str) or not model_name:
        raise InvalidInputError(f"model_name must be a non-empty string, not {model_name!r}.")
    if layout not in ("NCHW", "NHWC"):
        raise InvalidInputError(f"layout must be 'NCHW' or 'NHWC', not {layout!r}.")
    check_positive_float("timeout", timeout)
    check_positive_int("retries", retries, 0)
    check_nonnegative_float("backoff", backoff)
    check_nonnegative_float("backoff_max", backoff_max)
    check_positive_int("concurrency", concurrency)
    check_optional_positive_int("max_batch_size", max_batch_size)
    check_optional_positive_int("batch_size", batch_size)
    if not (isinstance(binary, bool) or (isinstance(binary, str) and binary == "auto")):
        raise InvalidInputError(f"binary must be True, False or 'auto', not {binary!r}.")
    if ends_in_softmax is not None and not isinstance(ends_in_softmax, bool):
        raise InvalidInputError(
            f"ends_in_softmax must be None (decide from the first answer), True or False, not {ends_in_softmax!r}."
        )
    if headers is not None and not (
        isinstance(headers, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise InvalidInputError(f"headers must be a mapping of header names to strings, not {headers!r}.")


def check_remote_options(options: Mapping[str, Any]) -> None:
    """Refuse, in the driver before any worker starts, options RemoteModel does not take or values it
    would refuse without contacting the server."""
    from onnxplain.models.remote import RemoteModel

    known = set(inspect.signature(RemoteModel.__init__).parameters) - {"self", "url", "model_name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidInputError(
            f"RemoteModel takes no option {', '.join(map(repr, unknown))}; it takes {', '.join(sorted(known))}."
        )
    if options.get("ends_in_softmax") not in (None, True, False):
        raise InvalidInputError(f"ends_in_softmax must be None, True or False, not {options['ends_in_softmax']!r}.")
