"""Cases of the model adapters: constructor arguments of FunctionModel, OnnxModel, TorchModel and
RemoteModel, and the query door ``model(batch)`` they share.

RemoteModel is pointed at a port where nothing listens: a bad argument must be refused before
any connection, so the expected InvalidInputError can only come from the door (a connection
attempt would raise RemoteModelError instead).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from onnxplain.demo import demo_onnx_path
from onnxplain.errors import (
    DeviceUnavailableError,
    InvalidInputError,
    ModelLoadError,
    NonFiniteOutputError,
    QueryBudgetExceeded,
)
from onnxplain.models import FunctionModel, Normalize, OnnxModel
from onnxplain.models.remote import RemoteModel
from onnxplain.models.torch import TorchModel
from tests.bad_input.env import CLASSES, SHAPE, CountingFn, Env
from tests.bad_input.inputs import BAD_COUNTS, BAD_X, VALID_X, reference_x
from tests.bad_input.table import Case

GROUP = "model adapters"
NOWHERE = "http://127.0.0.1:9"
"""The discard port: nothing answers there, so any request fails with RemoteModelError."""
REMOTE_GIVEN = {"input_name": "x", "output_name": "y", "input_shape": SHAPE, "num_classes": CLASSES}

BAD_SHAPES: dict[str, Any] = {
    "negative input_shape": (3, -8, 8),
    "zero input_shape": (3, 0, 8),
    "string input_shape": "3,8,8",
    "input_shape of strings": ("3", "8", "8"),
    "fractional input_shape": (3, 8.5, 8),
    "bool in input_shape": (True, 8, 8),
}
COMMON_BAD: dict[str, dict[str, Any]] = {
    "unknown output": {"output": "prob"},
    **{f"{k} batch_size": {"batch_size": v} for k, v in BAD_COUNTS.items() if v is not None},
    "negative max_queries": {"max_queries": -1},
    "string max_queries": {"max_queries": "5"},
    "bool max_queries": {"max_queries": True},
    "fractional max_queries": {"max_queries": 5.5},
    "preprocess as a string": {"preprocess": "imagenet"},
    "preprocess as a (mean, std) tuple": {"preprocess": ((0.5,), (0.5,))},
    "preprocess for 2 channels": {"preprocess": Normalize((0.5, 0.5), (0.2, 0.2))},
    "lower-case channel_order": {"channel_order": "rgb"},
}
"""Arguments every adapter shares (BaseQueryModel's), refused before it opens anything."""


def _function(env: Env, **kw: Any) -> FunctionModel:
    fn = CountingFn()
    env.fns.append(fn)
    return FunctionModel(fn, kw.pop("input_shape", SHAPE), kw.pop("num_classes", CLASSES), **kw)


def _function_cases() -> list[Case]:
    api = "FunctionModel"
    out = [Case(GROUP, api, kind, lambda env, kw=kw: _function(env, **kw), InvalidInputError) for kind, kw in COMMON_BAD.items()]
    out += [Case(GROUP, api, kind, lambda env, s=s: _function(env, input_shape=s), InvalidInputError) for kind, s in BAD_SHAPES.items()]
    out += [
        Case(GROUP, api, f"{k} num_classes", lambda env, v=v: _function(env, num_classes=v), InvalidInputError)
        for k, v in BAD_COUNTS.items()
    ]
    out += [
        Case(GROUP, api, "fn is not callable", lambda env: FunctionModel("f", SHAPE, CLASSES), InvalidInputError),
        Case(GROUP, api, "fn is None", lambda env: FunctionModel(None, SHAPE, CLASSES), InvalidInputError),
        Case(GROUP, api, "string ends_in_softmax", lambda env: _function(env, ends_in_softmax="yes"), InvalidInputError),
        Case(GROUP, api, "unknown head", lambda env: _function(env, head="softmax2"), InvalidInputError),
    ]
    return out


def _query(env: Env, batch: Any, model: Any = None, **kw: Any) -> Any:
    m = model(env) if model is not None else _function(env, **kw)
    return m(batch)


def _same_scores(x: Any):
    """Check: the scores of the contiguous float32 copy of the batch."""

    def check(env: Env, out: Any) -> None:
        ref = _function(env)(reference_x(_as_batch(x(env))))
        assert np.array_equal(np.asarray(out), ref)

    return check


def _call_cases() -> list[Case]:
    api = "QueryModel.__call__"
    batched = {k: v for k, v in BAD_X.items() if k not in ("empty batch", "5-D explicand", "2-D explicand (H,W)")}
    out = [
        Case(GROUP, api, kind, lambda env, x=x: _query(env, _as_batch(x(env))), InvalidInputError) for kind, x in batched.items()
    ]
    out += [
        Case(GROUP, api, kind, lambda env, x=x: _query(env, _as_batch(x(env))), None, check=_same_scores(x))
        for kind, x in VALID_X.items()
    ]
    out += [
        Case(GROUP, api, "one explicand without its batch axis", lambda env: _query(env, env.x()), InvalidInputError),
        Case(GROUP, api, "batch beyond max_queries", lambda env: _query(env, env.x(4), max_queries=3), QueryBudgetExceeded),
        Case(GROUP, api, "function answers NaN", lambda env: _query(env, env.x(4), model=_nan_model), NonFiniteOutputError, may_query=True),
        Case(GROUP, api, "function answers too few scores", lambda env: _query(env, env.x(2), model=_answer(np.zeros((2, 3)))), InvalidInputError, may_query=True),
        Case(GROUP, api, "function answers too many rows", lambda env: _query(env, env.x(2), model=_answer(np.zeros((3, CLASSES)))), InvalidInputError, may_query=True),
        Case(GROUP, api, "function answers None", lambda env: _query(env, env.x(2), model=_answer(None)), InvalidInputError, may_query=True),
        Case(GROUP, api, "function answers strings", lambda env: _query(env, env.x(2), model=_answer(np.full((2, CLASSES), "a"))), InvalidInputError, may_query=True),
        Case(GROUP, api, "empty query batch", lambda env: _query(env, np.zeros((0, *SHAPE), np.float32)), None, check=_empty),
    ]
    return out


def _as_batch(x: Any) -> Any:
    return x[None] if getattr(x, "ndim", None) == 3 else x


def _nan_model(env: Env) -> FunctionModel:
    fn = CountingFn(nan=True)
    env.fns.append(fn)
    return FunctionModel(fn, SHAPE, CLASSES)


def _answer(value: Any):
    return lambda env: FunctionModel(lambda z: value, SHAPE, CLASSES)


def _empty(env: Env, out: Any) -> None:
    assert np.asarray(out).shape == (0, CLASSES), np.asarray(out).shape


def _onnx_cases() -> list[Case]:
    api = "OnnxModel"
    path = str(demo_onnx_path())

    def onnx(**kw: Any):
        return lambda env: OnnxModel(kw.pop("model", path), device=kw.pop("device", "cpu"), **kw)

    out = [Case(GROUP, api, kind, onnx(**kw), InvalidInputError) for kind, kw in COMMON_BAD.items() if kind != "preprocess for 2 channels"]
    out += [Case(GROUP, api, kind, onnx(input_shape=s), InvalidInputError) for kind, s in BAD_SHAPES.items()]
    out += [
        Case(GROUP, api, "missing file", lambda env: OnnxModel(env.root / "missing.onnx", device="cpu"), ModelLoadError),
        Case(GROUP, api, "a directory", lambda env: OnnxModel(env.input_dir("models"), device="cpu"), ModelLoadError),
        Case(GROUP, api, "a text file", lambda env: OnnxModel(env.file("m.onnx", "not onnx"), device="cpu"), ModelLoadError),
        Case(GROUP, api, "an empty file", lambda env: OnnxModel(env.file("e.onnx"), device="cpu"), ModelLoadError),
        Case(GROUP, api, "garbage bytes", onnx(model=b"\x00\x01garbage"), ModelLoadError),
        Case(GROUP, api, "model is an int", onnx(model=123), InvalidInputError),
        Case(GROUP, api, "model is None", onnx(model=None), InvalidInputError),
        Case(GROUP, api, "input_shape not the graph's", onnx(input_shape=(3, 28, 28)), InvalidInputError),
        Case(GROUP, api, "unknown device", onnx(device="tpu"), InvalidInputError),
        Case(GROUP, api, "unknown layout", onnx(layout="CHW"), InvalidInputError),
        Case(GROUP, api, "unknown head", onnx(head="soft"), InvalidInputError),
        Case(GROUP, api, "negative intra_op_threads", onnx(intra_op_threads=-1), InvalidInputError),
        Case(GROUP, api, "string intra_op_threads", onnx(intra_op_threads="2"), InvalidInputError),
        Case(GROUP, api, "bool intra_op_threads", onnx(intra_op_threads=True), InvalidInputError),
        Case(GROUP, api, "string io_binding", onnx(io_binding="yes"), InvalidInputError),
        Case(GROUP, api, "string cuda_graph", onnx(cuda_graph="no"), InvalidInputError),
        Case(GROUP, api, "cuda_graph on the CPU", onnx(cuda_graph=True), InvalidInputError),
        Case(GROUP, api, "BGR for a 1-channel model", onnx(channel_order="BGR"), InvalidInputError),
        Case(GROUP, api, "preprocess for 3 channels", onnx(preprocess=Normalize((0.5,) * 3, (0.2,) * 3)), InvalidInputError),
    ]
    if not torch.cuda.is_available():
        out.append(Case(GROUP, api, "CUDA on a machine without CUDA", onnx(device="cuda"), DeviceUnavailableError))
    return out


def _torch_cases() -> list[Case]:
    api = "TorchModel"

    def tm(module: Any = None, **kw: Any):
        def make(env: Env) -> TorchModel:
            net = env.net() if module is None else module(env)
            return TorchModel(net, kw.pop("input_shape", SHAPE), **kw)

        return make

    out = [Case(GROUP, api, kind, tm(**kw), InvalidInputError) for kind, kw in COMMON_BAD.items()]
    out += [Case(GROUP, api, kind, tm(input_shape=s), InvalidInputError) for kind, s in BAD_SHAPES.items() if s != "3,8,8"]
    out += [Case(GROUP, api, f"{k} num_classes", tm(num_classes=v), InvalidInputError) for k, v in BAD_COUNTS.items() if v is not None]
    out += [
        Case(GROUP, api, "module is a QueryModel", tm(module=_function), InvalidInputError),
        Case(GROUP, api, "module is a string", tm(module=lambda env: "resnet18"), InvalidInputError),
        Case(GROUP, api, "no input_shape", lambda env: TorchModel(env.net()), InvalidInputError),
        Case(GROUP, api, "input_shape the module cannot take", tm(input_shape=(1, 8, 8)), InvalidInputError, may_query=True),
        Case(GROUP, api, "unknown device", tm(device="tpu"), InvalidInputError),
        Case(GROUP, api, "unknown head", tm(head="soft"), InvalidInputError),
        Case(GROUP, api, "string ends_in_softmax", tm(ends_in_softmax="yes"), InvalidInputError),
        Case(GROUP, "TorchModel.__call__", "int64 batch", lambda env: tm(num_classes=CLASSES)(env)(np.ones((2, *SHAPE), np.int64)), InvalidInputError),
        Case(GROUP, "TorchModel.__call__", "NaN batch", lambda env: tm(num_classes=CLASSES)(env)(BAD_X["NaN explicand"](env)[None]), InvalidInputError),
    ]
    if not torch.cuda.is_available():
        out.append(Case(GROUP, api, "CUDA on a machine without CUDA", tm(device="cuda"), DeviceUnavailableError))
    return out


def _remote_cases() -> list[Case]:
    api = "RemoteModel"

    def rm(url: Any = NOWHERE, name: Any = "m", **kw: Any):
        return lambda env: RemoteModel(url, name, **{**REMOTE_GIVEN, "max_batch_size": 8, "binary": False, **kw})

    bad: dict[str, dict[str, Any]] = {
        **COMMON_BAD,
        **{kind: {"input_shape": s} for kind, s in BAD_SHAPES.items()},
        **{f"{k} num_classes": {"num_classes": v} for k, v in BAD_COUNTS.items() if v is not None},
        "zero timeout": {"timeout": 0},
        "bool timeout": {"timeout": True},
        "string timeout": {"timeout": "30"},
        "NaN timeout": {"timeout": float("nan")},
        "negative retries": {"retries": -1},
        "bool retries": {"retries": True},
        "negative backoff": {"backoff": -0.1},
        "string backoff": {"backoff": "0.1"},
        "string backoff_max": {"backoff_max": "5"},
        "zero concurrency": {"concurrency": 0},
        "bool concurrency": {"concurrency": True},
        "zero max_batch_size": {"max_batch_size": 0},
        "bool max_batch_size": {"max_batch_size": True},
        "string binary": {"binary": "yes"},
        "unknown layout": {"layout": "CHW"},
        "string ends_in_softmax": {"ends_in_softmax": "yes"},
        "headers as a string": {"headers": "Authorization: x"},
    }
    out = [Case(GROUP, api, kind, rm(**kw), InvalidInputError) for kind, kw in bad.items()]
    out += [
        Case(GROUP, api, "ftp URL", rm(url="ftp://127.0.0.1:9"), InvalidInputError),
        Case(GROUP, api, "empty URL", rm(url=""), InvalidInputError),
        Case(GROUP, api, "URL is an int", rm(url=9), InvalidInputError),
        Case(GROUP, api, "empty model name", rm(name=""), InvalidInputError),
        Case(GROUP, api, "model name is an int", rm(name=5), InvalidInputError),
        Case(GROUP, "RemoteModel.from_url", "URL without /v2/models/", lambda env: RemoteModel.from_url(NOWHERE + "/m"), InvalidInputError),
    ]
    return out


def cases() -> list[Case]:
    return _function_cases() + _call_cases() + _onnx_cases() + _torch_cases() + _remote_cases()
