"""``onnxplain evaluate``: query-only faithfulness metrics of maps saved by ``onnxplain explain``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from onnxplain._io import to_jsonable
from onnxplain.cli._common import (
    Console,
    add_common,
    add_model_options,
    check_output_dir,
    format_table,
    method_list,
    normalize_from,
    positive_int,
    read_json,
    write_json,
)
from onnxplain.cli._models import open_query_model
from onnxplain.errors import InvalidInputError

EXAMPLES = """\
examples:
  onnxplain explain model.onnx a.png b.png --method geex,rise --out maps/
  onnxplain evaluate model.onnx --attributions maps/
  onnxplain evaluate model.onnx --attributions maps/ --metrics aopc_deletion --metric-step 10 --json

Reads DIR/results.json (written by explain), queries the model to score every saved map, writes
DIR/evaluation.json (or --out FILE) and prints the mean of each metric per method.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="faithfulness metrics (AOPC, insertion/deletion AUC) of saved maps",
        description="Score saved attribution maps by querying the model (deletion/insertion protocols).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="the .onnx file the maps were made for (or a KServe-v2 URL)")
    p.add_argument("--attributions", "-a", type=Path, required=True, help="directory written by 'onnxplain explain'")
    p.add_argument("--metrics", default="aopc_deletion,insertion_auc,deletion_auc", help="metrics to compute")
    p.add_argument("--metric-step", type=positive_int, default=None, help="pixels per curve step (default ~1%%)")
    p.add_argument("--out", "-o", type=Path, default=None, help="output JSON (default DIR/evaluation.json)")
    add_model_options(p)
    add_common(p)
    p.set_defaults(run=run)


def _entries(directory: Path) -> list[dict[str, Any]]:
    """``[{image, method, target, npy}]`` from an explain (or compare) results.json."""
    if not directory.is_dir():
        raise InvalidInputError(f"attributions directory {str(directory)!r} does not exist or is not a directory.")
    doc = read_json(directory / "results.json")
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{str(directory)!r} has no readable results.json (write it with 'onnxplain explain').")
    entries = []
    if doc.get("command") == "explain":
        for rec in doc.get("results", []):
            entries.append({"image": rec["image"], "method": rec["method"], "target": int(rec["target"]),
                            "npy": directory / rec["files"]["npy"]})
    elif "images" in doc:
        for im in doc["images"]:
            for mp in im.get("maps", []):
                entries.append({"image": im["source"], "method": mp["method"], "target": int(im["target"]),
                                "npy": directory / mp["file"]})
    if not entries:
        raise InvalidInputError(f"results.json in {str(directory)!r} lists no maps.")
    return entries


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.checks import check_targets
    from onnxplain.cli._pipeline import default_step, metric_function
    from onnxplain.images import load_image

    con = Console(args)
    metrics = method_list([args.metrics])
    fns = {name: metric_function(name) for name in metrics}
    entries = _entries(args.attributions)
    out_path = args.out or args.attributions / "evaluation.json"
    check_output_dir(out_path.parent)
    if out_path.is_dir():
        raise InvalidInputError(f"output {str(out_path)!r} is a directory; give a file name.")
    model = open_query_model(
        args.model, device=args.device, batch_size=args.batch_size,
        preprocess=normalize_from(args.mean, args.std), layout=args.layout,
    )
    by_method: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        if not Path(e["image"]).is_file():
            raise InvalidInputError(f"image {e['image']!r} listed in results.json does not exist any more.")
        if not e["npy"].is_file():
            raise InvalidInputError(f"map {str(e['npy'])!r} listed in results.json does not exist.")
        by_method.setdefault(e["method"], []).append(e)
    from onnxplain.cli._pipeline import _call_metric

    doc_methods: dict[str, Any] = {}
    rows = []
    step = None
    for method, items in by_method.items():
        x = np.stack([load_image(e["image"], model.input_shape) for e in items])
        try:
            a = np.stack([np.load(e["npy"], allow_pickle=False) for e in items]).astype(np.float32)
        except ValueError as exc:
            raise InvalidInputError(f"the saved {method} maps have different shapes ({exc}).") from None
        if a.shape != x.shape:
            raise InvalidInputError(f"the saved {method} maps have shape {a.shape[1:]}; the model takes {x.shape[1:]}.")
        targets = check_targets([e["target"] for e in items], len(items), model.num_classes)
        step = args.metric_step or default_step(*x.shape[2:])
        results = {name: _call_metric(fn, model, x, a, targets, step=step, seed=args.seed) for name, fn in fns.items()}
        doc_methods[method] = {
            "images": [e["image"] for e in items],
            "metrics": {name: r.to_dict() for name, r in results.items()},
        }
        for r in doc_methods[method]["metrics"].values():
            r["params"].pop("targets", None)
        rows.append((method, len(items), *(float(results[n].score) for n in metrics)))
    doc = {"schema": 1, "command": "evaluate", "model": args.model, "attributions": str(args.attributions),
           "metric_step": step, "methods": doc_methods}
    write_json(out_path, doc)
    arrows = [f"{n} {'↑' if fns and by_method and doc_methods[next(iter(doc_methods))]['metrics'][n]['higher_is_better'] else '↓'}"
              for n in metrics]
    con.say(format_table(["method", "images", *arrows], rows))
    con.say(f"wrote {out_path}")
    con.emit_json(to_jsonable(doc))
    return doc
