"""Errors in the CLI's words: the API arguments a message names become the flags that set them.

The library's messages speak Python (``pass input_shape=(C, H, W)``, ``n_queries must be an
integer ≥ 2``), the right words for a caller of the API. Where the CLI catches an
:class:`~onnxplain.errors.OnnxplainError` it rewrites them with :func:`cli_message`: first the
phrases in :data:`PHRASES` (API idioms with no one-word flag), then every ``name=`` and every
``name must …`` / ``name is required`` whose ``name`` is in :data:`FLAGS`. A test scans the
package's error messages so that every ``name=`` they contain is translated.
"""

from __future__ import annotations

import re

FLAGS: dict[str, str] = {
    "input_shape": "--input-shape",
    "batch_size": "--batch-size",
    "queries_per_call": "--batch-size",
    "seed": "--seed",
    "device": "--device",
    "target": "--target",
    "baseline": "--baseline",
    "n_queries": "--queries",
    "n_masks": "--queries",
    "n_samples": "--queries",
    "steps": "--steps",
    "samples": "--steps",
    "stride": "--metric-step",
    "step": "--metric-step",
    "num_classes": "--num-classes",
    "input_name": "--input-name",
    "output_name": "--output-name",
    "layout": "--layout",
    "channel_order": "--channel-order",
    "head": "--head",
    "output": "--head",
    "ends_in_softmax": "--ends-in-softmax",
    "imgsz": "--imgsz",
    "objectness": "--objectness",
    "num_workers": "--workers",
    "resume": "--force",
}
"""API argument → the CLI flag that sets it (budget arguments of every registered method included:
a test checks that each method's ``budget_param`` is here)."""

PHRASES: tuple[tuple[str, str], ...] = (
    (r"\binput_shape=(?:\(C, H, W\))?", "--input-shape C,H,W"),
    (r"pass resume=False to overwrite", "pass --force to recompute"),
    (r"torch\.load\(weights_only=True\)", "PyTorch's weights-only loader"),
    (r"score a model with output='probs'", "the target's probability is 0; choose another --target"),
    (r"\bbounds=\(([^)]*)\)", r"[\1]"),
    (r"\(put the normalisation inside the model\) or set bounds",
     "(pass images in [0, 1] and the normalisation with --mean/--std and --torch-mean/--torch-std)"),
    (r"use input_diversity='resize' for a model that needs a fixed input size",
     "leave attexplore out of --whitebox for a model that needs a fixed input size"),
    (r"\bcuda_graph=True\b", "a CUDA graph"),
    (r"\bversion=", "version "),
    (r"pass ids= to name them", "give them distinct file names"),
    (r"\bids= cannot", "ids cannot"),
    (r", a number or an array\b", ", a number or a .npy file"),
    (r"drop preprocess=Normalize\(\.\.\.\)", "drop --mean/--std"),
    (r"so output='probs' would be a guess", "so taking its outputs for logits would be a guess"),
)

_NAME = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"
_KEYWORD = re.compile(rf"(?<![\w-])({_NAME})=(?:\.(?=\s|$))?")
_SUBJECT = re.compile(rf"(?<![\w-])({_NAME})(?= (?:must|is required|are required)\b)")


def _keyword(match: re.Match[str]) -> str:
    flag = FLAGS.get(match[1])
    end = "." if match[0].endswith(".") else ""
    return (flag or match[1]) + (end or " ")


def cli_message(text: str) -> str:
    """``text`` with API idioms and argument names replaced by the CLI's flags (one line).

    A ``name=`` with no flag (none is left by the package's own messages) loses its ``=``.
    """
    text = " ".join(str(text).split())
    for pattern, replacement in PHRASES:
        text = re.sub(pattern, replacement, text)
    text = " ".join(_KEYWORD.sub(_keyword, text).split())
    return _SUBJECT.sub(lambda m: FLAGS.get(m[1], m[1]), text)
