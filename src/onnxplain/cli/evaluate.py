"""``onnxplain evaluate``: query-only faithfulness metrics of maps saved by ``onnxplain explain``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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


def run(args: argparse.Namespace) -> dict[str, Any]:
    from onnxplain.pipeline.cache import write_json
    from onnxplain.pipeline.evaluate import evaluate_saved
    from onnxplain.registry import get_metric

    con = Console(args)
    metrics = [get_metric(name) for name in method_list([args.metrics])]
    out_path = args.out or args.attributions / "evaluation.json"
    check_output_dir(out_path.parent)
    if out_path.is_dir():
        raise InvalidInputError(f"output {str(out_path)!r} is a directory; give a file name.")
    model = open_query_model(args.model, args, normalize_from(args.mean, args.std))
    doc = evaluate_saved(model, args.attributions, [m.name for m in metrics], step=args.metric_step,
                         seed=args.seed, batch_size=args.batch_size, source=args.model)
    write_json(out_path, doc)
    rows = [
        (method, len(d["images"]), *(float(d["metrics"][m.name]["score"]) for m in metrics))
        for method, d in doc["methods"].items()
    ]
    arrows = [f"{m.name} {'↑' if m.higher_is_better else '↓'}" for m in metrics]
    con.say(format_table(["method", "images", *arrows], rows))
    con.say(f"wrote {out_path}")
    con.emit_json(to_jsonable(doc))
    return doc
