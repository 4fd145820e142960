"""Cases of the APIs that write files: ``export_onnx``, ``Explanation.save`` (and ``load``), and the
dataset runner ``explain_dataset`` (in-process, ``num_workers=0``).

Besides the specific exception, every case asserts that nothing appeared under the case's
directory: no output file, no run directory, no temporary file. The dataset runner is given a
spec building counting FunctionModels, so its queries are counted as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from onnxplain.blackbox import GEEX
from onnxplain.distributed import MethodSpec, explain_dataset
from onnxplain.errors import (
    ExportError,
    InvalidInputError,
    ModelLoadError,
    NonFiniteOutputError,
    QueryBudgetExceeded,
)
from onnxplain.explanation import Explanation
from onnxplain.export import check_parity, export_onnx
from onnxplain.models.base import FunctionModel
from tests.bad_input.env import CLASSES, SHAPE, CountingFn, Env
from tests.bad_input.inputs import BAD_COUNTS, BAD_SEEDS, BAD_X
from tests.bad_input.table import Case


class _FourD(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _export(module: Any = None, path: Any = None, shape: Any = SHAPE, **kw: Any):
    def run(env: Env) -> Any:
        net = env.net() if module is None else module(env)
        return export_onnx(net, env.out / "m.onnx" if path is None else path(env), shape, **kw)

    return run


def _export_cases() -> list[Case]:
    g, api = "export", "export_onnx"
    shapes = {
        "2-D input_shape": (8, 8),
        "zero in input_shape": (3, 0, 8),
        "negative input_shape": (3, -8, 8),
        "string input_shape": "3,8,8",
        "input_shape of strings": ("3", "8", "8"),
        "None input_shape": None,
    }
    out = [Case(g, api, kind, _export(shape=s), InvalidInputError) for kind, s in shapes.items()]
    out += [
        Case(g, api, "module is a string", _export(module=lambda env: "resnet18"), InvalidInputError),
        Case(g, api, "module is a QueryModel", _export(module=lambda env: env.model()), InvalidInputError),
        Case(g, api, "input_shape the module cannot take", _export(shape=(1, 8, 8)), InvalidInputError, may_query=True),
        Case(g, api, "module returns a feature map", _export(module=lambda env: _FourD()), ExportError, may_query=True),
        Case(g, api, "module returns NaN", _export(module=lambda env: env.net(nan=True)), NonFiniteOutputError, may_query=True),
        Case(g, api, "normalize with 2 values for 3 channels", _export(normalize=((0.5, 0.5), (0.2, 0.2))), InvalidInputError),
        Case(g, api, "normalize as a string", _export(normalize="imagenet"), InvalidInputError),
        Case(g, api, "normalize with a zero std", _export(normalize=((0.5,) * 3, (0.0,) * 3)), InvalidInputError),
        Case(g, api, "3 labels for 4 classes", _export(labels=["a", "b", "c"]), InvalidInputError, may_query=True),
        Case(g, api, "labels as one string", _export(labels="abcd"), InvalidInputError),
        Case(g, api, "string check flag", _export(check="yes"), InvalidInputError),
        Case(g, api, "negative atol", _export(atol=-1e-4), InvalidInputError),
        Case(g, api, "string rtol", _export(rtol="1e-4"), InvalidInputError),
        Case(g, api, "NaN atol", _export(atol=float("nan")), InvalidInputError),
        Case(g, api, "source is not a string", _export(source=5), InvalidInputError),
        Case(g, api, "path is an existing directory", _export(path=lambda env: env.input_dir("dir.onnx")), InvalidInputError),
        Case(g, api, "path below a file", _export(path=lambda env: env.file("file") / "m.onnx"), InvalidInputError),
        Case(g, api, "path is None", _export(path=lambda env: None), InvalidInputError),
        Case(g, api, "path is an int", _export(path=lambda env: 5), InvalidInputError),
    ]
    out += [Case(g, api, f"{k} opset", _export(opset=v), InvalidInputError) for k, v in BAD_COUNTS.items()]
    out += [
        Case(g, "check_parity", "module is a string", lambda env: check_parity("net", env.model(), SHAPE), InvalidInputError),
        Case(g, "check_parity", "model is not a QueryModel", lambda env: check_parity(env.net(), "m.onnx", SHAPE), InvalidInputError),
        Case(g, "check_parity", "zero batch size", lambda env: check_parity(env.net(), env.model(), SHAPE, batch_sizes=(0,)), InvalidInputError),
        Case(g, "check_parity", "string batch size", lambda env: check_parity(env.net(), env.model(), SHAPE, batch_sizes=("2",)), InvalidInputError),
        Case(g, "check_parity", "bad input_shape", lambda env: check_parity(env.net(), env.model(), (3, 0, 8)), InvalidInputError),
    ]
    out += [
        Case(g, "check_parity", kind, lambda env, v=v: check_parity(env.net(), env.model(), SHAPE, seed=v), InvalidInputError)
        for kind, v in BAD_SEEDS.items()
    ]
    return out


def _explanation() -> Explanation:
    return Explanation(attributions=np.ones(SHAPE, np.float32), method="geex", target=1, score=0.5)


def _save_cases() -> list[Case]:
    g = "Explanation files"

    def save(path: Any):
        return lambda env: _explanation().save(path(env))

    def load(path: Any):
        return lambda env: Explanation.load(path(env))

    out = [
        Case(g, "Explanation.save", "path is None", save(lambda env: None), InvalidInputError),
        Case(g, "Explanation.save", "path is an int", save(lambda env: 5), InvalidInputError),
        Case(g, "Explanation.save", "path is an existing directory", save(lambda env: env.input_dir("exp.npz")), InvalidInputError),
        Case(g, "Explanation.save", "path below a file", save(lambda env: env.file("file") / "exp.npz"), InvalidInputError),
        Case(g, "Explanation.load", "missing file", load(lambda env: env.root / "none.npz"), InvalidInputError),
        Case(g, "Explanation.load", "a text file", load(lambda env: env.file("t.npz", "text")), InvalidInputError),
        Case(g, "Explanation.load", "a directory", load(lambda env: env.input_dir("d.npz")), InvalidInputError),
        Case(g, "Explanation.load", "an npz without meta", load(lambda env: _npz(env)), InvalidInputError),
        Case(g, "Explanation.load", "path is None", load(lambda env: None), InvalidInputError),
    ]
    out.append(Case(g, "Explanation.save", "path without the .npz suffix", save(lambda env: env.root / "exp"), None, check=_saved, writes=True))
    return out


def _saved(env: Env, path: Any) -> None:
    """Exactly ``exp.npz`` was written (no temporary file left) and it loads back."""
    assert env.written() == [str(env.root / "exp.npz")], env.written()
    back = Explanation.load(path)
    assert np.array_equal(back.attributions, _explanation().attributions) and back.target == 1


def _run_files(env: Env) -> list[str]:
    """What a finished run directory may hold; anything else (a .tmp file) fails the check."""
    return [p for p in env.written() if p.startswith(str(env.out))]


def _same_maps_as_contiguous(env: Env, result: Any) -> None:
    ref = explain_dataset(np.ascontiguousarray(env.x(2)), FunctionSpec(env.fns), GEEX8, out=env.root / "ref", num_workers=0)
    assert len(result.ok) == 2 and len(ref.ok) == 2
    for row in ref.rows:
        assert np.array_equal(result.load(row["id"]).attributions, ref.load(row["id"]).attributions)
    assert not [p for p in _run_files(env) if p.endswith(".tmp")]


def _error_rows(env: Env, result: Any) -> None:
    """A model answering NaN fails each image with an error row; no map is written for it."""
    assert result.rows and all(r["status"] == "error" and "NonFiniteOutputError" in r["error"] for r in result.rows)
    maps = [p for p in _run_files(env) if "/maps/" in p]
    assert maps == [], maps


def _npz(env: Env) -> Any:
    path = env.file("plain.npz")
    np.savez(path, attributions=np.zeros(3))
    return path


@dataclass(frozen=True)
class FunctionSpec:
    """A ModelSpec building counting FunctionModels (queries land in ``fns``)."""

    fns: list = field(compare=False, hash=False, repr=False)
    nan: bool = False
    max_queries: int | None = None

    def build(self, device: str = "cpu", *, threads: int | None = None) -> FunctionModel:
        fn = CountingFn(nan=self.nan)
        self.fns.append(fn)
        return FunctionModel(fn, SHAPE, CLASSES, max_queries=self.max_queries)

    def identity(self) -> dict[str, Any]:
        return {"kind": "function", "nan": self.nan}


GEEX8 = MethodSpec("geex", {"n_queries": 8})


def _run(images: Any = None, method: Any = GEEX8, spec: dict | None = None, **kw: Any):
    def run(env: Env) -> Any:
        imgs = env.x(3) if images is None else images(env)
        model = FunctionSpec(env.fns, **(spec or {}))
        m = method(env) if callable(method) else method
        return explain_dataset(imgs, model, m, **{"out": env.out, "num_workers": 0, **kw})

    return run


def _dataset_cases() -> list[Case]:
    g, api = "dataset runner", "explain_dataset"
    batches = {
        "NaN image": lambda env: np.stack([env.x(), BAD_X["NaN explicand"](env)]),
        "int64 images": lambda env: (env.x(2) > 0.5).astype(np.int64),
        "images without a channel axis": lambda env: env.x(2)[:, 0],
        "images of the wrong height": lambda env: np.zeros((2, 3, 9, 8), np.float32),
        "empty image array": lambda env: np.zeros((0, *SHAPE), np.float32),
        "list with a NaN image": lambda env: [env.x(), BAD_X["+inf explicand"](env)],
        "list with a string array": lambda env: [env.x(), np.full(SHAPE, "a")],
        "missing image file": lambda env: [str(env.root / "missing.npy")],
        "images is None": lambda env: None,
        "images is a missing directory": lambda env: str(env.root / "nowhere"),
    }
    out = [Case(g, api, kind, _run(images=v), InvalidInputError) for kind, v in batches.items()]
    targets = {"target = num_classes": CLASSES, "negative target": -1, "fractional target": 1.5, "bool target": True,
               "string target": "1", "NaN target": float("nan"), "too many targets": [0, 1, 2, 3], "too few targets": [0]}  # fmt: skip
    out += [Case(g, api, kind, _run(targets=t), InvalidInputError) for kind, t in targets.items()]
    out += [
        Case(g, api, "zero budget in the method params", _run(method=lambda env: MethodSpec("geex", {"n_queries": 0})), InvalidInputError),
        Case(g, api, "unknown method param", _run(method=lambda env: MethodSpec("geex", {"n_samples": 8})), InvalidInputError),
        Case(g, api, "white-box method", _run(method="ig"), InvalidInputError),
        Case(g, api, "unknown method", _run(method="shap"), InvalidInputError),
        Case(g, api, "method spec is an explainer object", _run(method=lambda env: GEEX(n_queries=8)), InvalidInputError),
        Case(g, api, "method params with a seed", _run(method=lambda env: MethodSpec("geex", {"seed": 1})), InvalidInputError),
        Case(g, api, "per-image budget above max_queries", _run(spec={"max_queries": 5}), QueryBudgetExceeded),
        Case(g, api, "model path missing", lambda env: explain_dataset(env.x(2), env.root / "m.onnx", GEEX8, out=env.out, num_workers=0), ModelLoadError),
        Case(g, api, "model file not ONNX", lambda env: explain_dataset(env.x(2), env.file("m.onnx", "x"), GEEX8, out=env.out, num_workers=0), ModelLoadError),
        Case(g, api, "model spec is an int", lambda env: explain_dataset(env.x(2), 5, GEEX8, out=env.out, num_workers=0), InvalidInputError),
        Case(g, api, "out is an existing file", lambda env: explain_dataset(env.x(2), FunctionSpec(env.fns), GEEX8, out=env.file("taken"), num_workers=0), InvalidInputError),
        Case(g, api, "out is None", _run(out=None), InvalidInputError),
        Case(g, api, "string resume", _run(resume="no"), InvalidInputError),
        Case(g, api, "ids of the wrong length", _run(ids=["a", "b"]), InvalidInputError),
        Case(g, api, "duplicate ids", _run(ids=["a", "a", "b"]), InvalidInputError),
    ]
    bad_numbers = {
        "negative num_workers": {"num_workers": -1},
        "bool num_workers": {"num_workers": False},
        "string num_workers": {"num_workers": "0"},
        "string gpus_per_worker": {"gpus_per_worker": "1"},
        "negative gpus_per_worker": {"gpus_per_worker": -1},
        "zero cpus_per_worker": {"cpus_per_worker": 0},
        "NaN cpus_per_worker": {"cpus_per_worker": float("nan")},
        **{kind: {"seed": v} for kind, v in BAD_SEEDS.items()},
    }
    out += [Case(g, api, kind, _run(**kw), InvalidInputError) for kind, kw in bad_numbers.items()]
    out += [
        Case(g, api, "read-only strided images", _run(images=_read_only_strided), None, check=_same_maps_as_contiguous, writes=True),
        Case(g, api, "model answers NaN (one error row per image)", _run(spec={"nan": True}), None, check=_error_rows, writes=True),
    ]
    return out


def _read_only_strided(env: Env) -> np.ndarray:
    big = np.repeat(env.x(2), 2, axis=3)[..., ::2]
    big.setflags(write=False)
    return big


def cases() -> list[Case]:
    return _export_cases() + _save_cases() + _dataset_cases()
