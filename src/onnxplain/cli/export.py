"""``onnxplain export``: a torch classifier → an ONNX model taking [0,1] pixels, parity-checked."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from onnxplain.cli._common import (
    Console,
    add_common,
    check_output_dir,
    float_list,
    format_table,
    load_labels,
    positive_int,
    shape_arg,
)
from onnxplain.errors import InvalidInputError

EXAMPLES = """\
examples:
  onnxplain export --torch resnet18 --weights r18.pt --input-shape 3,224,224 \\
      --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --labels imagenet.txt resnet18.onnx
  onnxplain export --torch mypkg.nets:Net --weights net.pt --input-shape 1,28,28 net.onnx
  onnxplain export --torch demo --input-shape 1,28,28 mnist.onnx

The normalisation (--mean/--std) goes inside the graph, so the ONNX model and the torch module are
one function of [0,1] pixels; ONNX Runtime is checked against torch before the file is written.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a torch classifier to ONNX (normalisation folded in, parity-checked)",
        description="Export a torch classifier to an ONNX model that takes float32 [0,1] NCHW pixels.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("output", type=Path, metavar="OUT.onnx", help="where to write the ONNX model")
    from onnxplain.cli._models import add_torch_options

    add_torch_options(p, required=True)
    p.add_argument("--input-shape", type=shape_arg, required=True, help="one sample's C,H,W, e.g. 3,224,224")
    p.add_argument("--mean", type=float_list, help="normalisation folded into the graph (with --std)")
    p.add_argument("--std", type=float_list, help="with --mean")
    p.add_argument("--labels", type=Path, help="class names stored in the model's metadata")
    p.add_argument("--opset", type=positive_int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime vs torch parity check")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    add_common(p, device=False, batch=False, seed=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.cli._models import load_torch_module
    from onnxplain.export import export_onnx

    con = Console(args)
    out = Path(args.output)
    if out.suffix.lower() != ".onnx":
        raise InvalidInputError(f"the output file {str(out)!r} should end in .onnx.")
    if out.is_dir():
        raise InvalidInputError(f"the output {str(out)!r} is a directory.")
    if out.exists() and not args.force:
        raise InvalidInputError(f"{str(out)!r} exists; pass --force to overwrite it.")
    check_output_dir(out.parent if str(out.parent) else Path("."))
    if (args.mean is None) != (args.std is None):
        raise InvalidInputError("--mean and --std must be given together.")
    module = load_torch_module(
        args.torch_spec, args.weights, num_classes=args.num_classes, mean=args.torch_mean, std=args.torch_std
    )
    labels = None
    if args.labels is not None:
        # The class count is only known after a forward pass; export_onnx checks it again.
        import torch

        with torch.inference_mode():
            n = int(module(torch.zeros((1, *args.input_shape))).reshape(1, -1).shape[1])
        labels = load_labels(args.labels, n)
    normalize = (args.mean, args.std) if args.mean is not None else None
    report = export_onnx(
        module,
        out,
        args.input_shape,
        normalize=normalize,
        labels=labels,
        opset=args.opset,
        check=not args.no_check,
        source=args.torch_spec,
    )
    doc = report.to_dict()
    con.say(format_table(["field", "value"], [(k, str(v)) for k, v in doc.items() if k != "metadata"]))
    con.say(f"wrote {out}")
    con.emit_json(doc)
    return doc
