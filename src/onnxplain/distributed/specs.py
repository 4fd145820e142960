"""Picklable recipes for a model and an explainer, and the per-image seed.

Workers never receive a live ONNX Runtime session or HTTP connection (neither pickles): they
receive a spec, a small frozen dataclass, and build their own model from it once. The same specs
drive the in-process path, so a distributed run and a local run build identical objects.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from onnxplain.errors import InvalidInputError, ModelLoadError
from onnxplain.models.base import ChannelOrder, QueryModel
from onnxplain.models.heads import Head, OutputHead
from onnxplain.models.inputs import Normalize

__all__ = [
    "MethodSpec",
    "ModelSpec",
    "OnnxModelSpec",
    "RemoteModelSpec",
    "as_method_spec",
    "as_model_spec",
    "image_seed",
]


def image_seed(seed: int, image_id: str) -> int:
    """The explainer seed for one image: a 63-bit integer fixed by ``(seed, image_id)`` alone.

    ``SeedSequence([seed, blake2b(image_id)])`` mixes the run seed with a stable hash of the id
    (Python's ``hash`` is salted per process, so it would differ between workers). The result does
    not depend on which worker explains the image, in which order, or how many workers there are.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"seed must be a non-negative integer, got {seed!r}.")
    digest = hashlib.blake2b(str(image_id).encode("utf-8"), digest_size=16).digest()
    sequence = np.random.SeedSequence([int(seed), int.from_bytes(digest, "little")])
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


@runtime_checkable
class ModelSpec(Protocol):
    """A picklable recipe: ``build(device)`` returns a fresh QueryModel in the worker."""

    def build(self, device: str = "cpu", *, threads: int | None = None) -> QueryModel: ...

    def identity(self) -> dict[str, Any]:
        """What makes results comparable across runs (used to refuse resuming a different run)."""
        ...


@dataclass(frozen=True)
class OnnxModelSpec:
    """Recipe for :class:`~onnxplain.models.onnx.OnnxModel` (same options, minus the session).

    ``max_queries`` is a budget **per image**: counters are reset before every explanation.
    ``intra_op_threads=None`` lets the runner cap ONNX Runtime's threads to the worker's CPUs.
    ``channel_order`` (``"RGB"``/``"BGR"``) and ``head`` (``"auto"`` or a declared head) as
    :class:`~onnxplain.models.onnx.OnnxModel`; both are part of :meth:`identity`.
    """

    path: str
    output: OutputHead = "probs"
    batch_size: int | Literal["auto"] = "auto"
    preprocess: Normalize | None = None
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    max_queries: int | None = None
    input_shape: tuple[int, ...] | None = None
    intra_op_threads: int | None = None
    channel_order: ChannelOrder = "RGB"
    head: Head | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))

    def check(self) -> None:
        """Cheap driver-side validation, so a missing file fails before any worker starts."""
        if not Path(self.path).is_file():
            raise ModelLoadError(f"model file {self.path!r} does not exist.")

    def build(self, device: str = "cpu", *, threads: int | None = None) -> QueryModel:
        from onnxplain.models.onnx import OnnxModel

        return OnnxModel(
            self.path,
            output=self.output,
            device=device,
            batch_size=self.batch_size,
            preprocess=self.preprocess,
            layout=self.layout,
            max_queries=self.max_queries,
            input_shape=self.input_shape,
            intra_op_threads=self.intra_op_threads if self.intra_op_threads is not None else threads,
            channel_order=self.channel_order,
            head=self.head,
        )

    def identity(self) -> dict[str, Any]:
        out = {
            "kind": "onnx",
            "path": str(Path(self.path).resolve()),
            "output": self.output,
            "preprocess": None if self.preprocess is None else [self.preprocess.mean, self.preprocess.std],
            "layout": self.layout,
        }
        # only when not the default, so the identity of a run made before these options existed holds
        if self.channel_order != "RGB":
            out["channel_order"] = self.channel_order
        if self.head != "auto":
            out["head"] = self.head
        return out


@dataclass(frozen=True)
class RemoteModelSpec:
    """Recipe for :class:`~onnxplain.models.remote.RemoteModel`: a v2 model URL plus its options.

    Every worker opens its own connections; ``max_queries`` is a budget per image. With
    ``ends_in_softmax`` left at ``None`` each worker decides the head from its first answer (the
    same server gives every worker the same decision); declare it to skip the check and its warning.
    """

    url: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from onnxplain.models.remote import check_remote_options, parse_v2_url

        parse_v2_url(self.url)  # a bad URL or option fails here, in the driver
        check_remote_options(self.options)
        object.__setattr__(self, "options", dict(self.options))

    def check(self) -> None:
        pass

    def build(self, device: str = "cpu", *, threads: int | None = None) -> QueryModel:
        from onnxplain.models.remote import RemoteModel

        return RemoteModel.from_url(self.url, **self.options)

    def identity(self) -> dict[str, Any]:
        keep = ("output", "input_name", "output_name", "layout", "ends_in_softmax", "preprocess", "channel_order", "head")
        opts = {k: v for k, v in self.options.items() if k in keep}
        if isinstance(opts.get("preprocess"), Normalize):
            opts["preprocess"] = [opts["preprocess"].mean, opts["preprocess"].std]
        return {"kind": "remote", "url": self.url, **opts}


@dataclass(frozen=True)
class MethodSpec:
    """A registry method name and its constructor parameters; the seed is supplied per image."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from onnxplain.registry import METHODS, is_blackbox

        key = self.name.lower() if isinstance(self.name, str) else None
        if key not in METHODS:
            raise InvalidInputError(f"unknown method {self.name!r}; choose one of: {', '.join(METHODS)}.")
        if not is_blackbox(key):
            raise InvalidInputError(
                f"{self.name!r} is a white-box method (it needs the torch module); explain_dataset runs "
                "black-box methods on a QueryModel."
            )
        if not isinstance(self.params, Mapping):
            raise InvalidInputError(f"method params must be a mapping of argument names to values, not {self.params!r}.")
        if "seed" in self.params:
            raise InvalidInputError(
                "method params must not contain 'seed': each image's seed is derived from the run seed and its id."
            )
        object.__setattr__(self, "name", key)
        object.__setattr__(self, "params", dict(self.params))
        self.build(0)  # the driver refuses bad params before any worker starts or anything is written

    def build(self, seed: int) -> Any:
        from onnxplain.registry import get_method

        try:
            return get_method(self.name)(**self.params, seed=seed)
        except TypeError as exc:  # an argument the method does not take
            raise InvalidInputError(f"{self.name}: {exc}.") from None

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


def as_model_spec(model: ModelSpec | str | os.PathLike[str], **options: Any) -> ModelSpec:
    """A spec from a spec, an ``.onnx`` path, or an ``http(s)://…/v2/models/NAME`` URL."""
    if isinstance(model, (OnnxModelSpec, RemoteModelSpec)) or (
        not isinstance(model, (str, os.PathLike)) and isinstance(model, ModelSpec)
    ):
        if options:
            raise InvalidInputError("model options go into the spec when a spec is given.")
        return model
    if isinstance(model, str) and model.startswith(("http://", "https://")):
        return RemoteModelSpec(model, options)
    if isinstance(model, (str, os.PathLike)):
        return OnnxModelSpec(os.fspath(model), **options)
    raise InvalidInputError(
        f"model_spec must be an OnnxModelSpec, a RemoteModelSpec, a path or a v2 URL, not {type(model).__name__}."
    )


def as_method_spec(method: MethodSpec | str | tuple[str, Mapping[str, Any]], **params: Any) -> MethodSpec:
    """A spec from a spec, a method name (with ``params``), or ``(name, params)``."""
    if isinstance(method, MethodSpec):
        if params:
            raise InvalidInputError("method params go into the spec when a spec is given.")
        return method
    if isinstance(method, str):
        return MethodSpec(method, params)
    if isinstance(method, tuple) and len(method) == 2 and isinstance(method[0], str):
        return MethodSpec(method[0], {**dict(method[1]), **params})
    raise InvalidInputError(
        f"method_spec must be a MethodSpec or a method name, not {type(method).__name__}."
    )
