"""Opening the models a command names: an ONNX file or a KServe-v2 URL, and a torch SPEC."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from onnxplain.errors import InvalidInputError, ModelLoadError


def is_url(text: str) -> bool:
    return str(text).startswith(("http://", "https://"))


def remote_options(args: argparse.Namespace, preprocess: Any = None, output: str = "probs") -> dict[str, Any]:
    """The RemoteModel options a command line gives, for local use and for Ray workers alike."""
    return {
        "output": output,
        "layout": args.layout,
        "batch_size": args.batch_size,
        "preprocess": preprocess,
        "input_shape": args.input_shape,
        "input_name": args.input_name,
        "output_name": args.output_name,
        "num_classes": args.num_classes,
        "channel_order": args.channel_order,
        "ends_in_softmax": {"auto": None, "yes": True, "no": False}[args.ends_in_softmax],
    }


def demo_path(source: str) -> Path:
    """``"demo"`` (unless a file of that name exists) is the shipped MNIST CNN."""
    path = Path(source)
    if source == "demo" and not path.exists():
        from onnxplain.demo import demo_onnx_path

        return Path(demo_onnx_path())
    return path


def _check_file_options(args: argparse.Namespace) -> None:
    own_classes = args.num_classes if getattr(args, "num_classes_of_model", False) else None
    remote_head = None if args.ends_in_softmax == "auto" else args.ends_in_softmax
    for flag, value in (("--input-name", args.input_name), ("--output-name", args.output_name),
                        ("--num-classes", own_classes), ("--ends-in-softmax", remote_head)):
        if value is not None:
            raise InvalidInputError(f"{flag} applies to a KServe-v2 URL model, not to an ONNX file.")


def open_query_model(source: str, args: argparse.Namespace, preprocess: Any = None, output: str = "probs") -> Any:
    """An :class:`OnnxModel` for a file path (``"demo"``: the shipped MNIST CNN), a :class:`RemoteModel` for an
    ``http(s)://…/v2/models/NAME`` URL, configured by the command's model options (``--batch-size``
    is the model's samples per call)."""
    if is_url(source):
        from onnxplain.models.remote import RemoteModel

        return RemoteModel.from_url(source, **remote_options(args, preprocess, output))
    from onnxplain.models.onnx import OnnxModel

    _check_file_options(args)
    path = demo_path(source)
    if path.is_file() and path.suffix.lower() in (".png", ".jpg", ".jpeg", ".npy", ".gif", ".bmp"):
        raise ModelLoadError(f"{source} looks like an image, not an ONNX model (the model comes first).")
    return OnnxModel(
        path,
        output=output,  # type: ignore[arg-type]
        device=args.device,
        batch_size=args.batch_size if args.batch_size is not None else "auto",
        preprocess=preprocess,
        layout=args.layout,
        input_shape=args.input_shape,
        channel_order=args.channel_order,
        head=args.head,
    )


def model_spec(source: str, args: argparse.Namespace, preprocess: Any = None) -> Any:
    """The picklable recipe of the same model for the dataset runner's workers."""
    from onnxplain.distributed import OnnxModelSpec, RemoteModelSpec

    if is_url(source):
        return RemoteModelSpec(source, remote_options(args, preprocess))
    return OnnxModelSpec(
        path=str(demo_path(source).resolve()),
        batch_size=args.batch_size if args.batch_size is not None else "auto",
        preprocess=preprocess,
        layout=args.layout,
        input_shape=args.input_shape,
        channel_order=args.channel_order,
        head=args.head,
    )


def model_identity(source: str, args: argparse.Namespace, preprocess: Any = None) -> dict[str, Any]:
    """What determines a model's outputs: its file's digest (or its URL) and how inputs are fed."""
    from onnxplain.cli._common import file_digest

    return {
        "model": source if is_url(source) else file_digest(demo_path(source)),
        "mean": list(preprocess.mean) if preprocess is not None else None,
        "std": list(preprocess.std) if preprocess is not None else None,
        "layout": args.layout,
        "channel_order": args.channel_order,
        "head": args.head,
        "ends_in_softmax": args.ends_in_softmax,
    }


def add_torch_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group("PyTorch model")
    group.add_argument(
        "--torch",
        dest="torch_spec",
        required=required,
        metavar="SPEC",
        help="'demo', a torchvision architecture (e.g. resnet18) or 'package.module:Class' "
        "(built with no arguments); weights from --weights",
    )
    group.add_argument("--weights", type=Path, help="a state_dict file (loaded with weights_only=True)")
    group.add_argument("--num-classes", type=int, default=None, help="classes of a torchvision architecture")
    group.add_argument(
        "--torch-mean", type=_floats, help="normalisation the torch module expects (folded into a pixel-space wrapper)"
    )
    group.add_argument("--torch-std", type=_floats, help="with --torch-mean")


def _floats(text: str) -> tuple[float, ...]:
    from onnxplain.cli._common import float_list

    return float_list(text)


def load_torch_module(
    spec: str,
    weights: Path | None = None,
    *,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Any:
    """A torch module in eval mode that takes [0,1] pixels, from a SPEC (see :func:`add_torch_options`)."""
    import torch

    if (mean is None) != (std is None):
        raise InvalidInputError("--torch-mean and --torch-std must be given together.")
    if spec == "demo":
        if weights is not None:
            raise InvalidInputError("--weights cannot be used with the demo model.")
        from onnxplain.demo import load_demo_torch

        module = load_demo_torch()
    elif ":" in spec:
        module_name, _, class_name = spec.partition(":")
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            mod = importlib.import_module(module_name)
        except ImportError as exc:
            raise InvalidInputError(f"cannot import module {module_name!r} for --torch {spec!r}: {exc}.") from None
        cls = getattr(mod, class_name, None)
        if cls is None:
            raise InvalidInputError(f"module {module_name!r} has no attribute {class_name!r}.")
        try:
            module = cls()
        except TypeError as exc:
            raise InvalidInputError(f"{spec} cannot be built without arguments ({exc}).") from None
        if not isinstance(module, torch.nn.Module):
            raise InvalidInputError(f"{spec} is not a torch.nn.Module.")
        if weights is not None:
            from onnxplain.export import load_state_dict

            try:
                module.load_state_dict(load_state_dict(weights))
            except RuntimeError as exc:
                raise ModelLoadError(f"{weights} does not fit {spec}: {str(exc).splitlines()[0]}") from None
    else:
        from onnxplain.export import load_torchvision

        if weights is None:
            raise InvalidInputError(
                f"--torch {spec} needs --weights FILE (onnxplain never downloads weights)."
            )
        module = load_torchvision(spec, weights, num_classes=num_classes or 1000)
    if mean is not None:
        from onnxplain.export import PixelSpaceModel

        module = PixelSpaceModel(module, mean=mean, std=std)
    return module.eval()
