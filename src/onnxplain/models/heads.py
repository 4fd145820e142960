"""What a model's last layer is (its *head*) and what ``output=`` makes of it.

A classifier's graph ends in one of four heads, read from the graph (ONNX), the last submodule
(torch) or declared by the user:

- ``"softmax"``: class probabilities that sum to 1;
- ``"logsoftmax"``: their logarithms;
- ``"sigmoid"``: one independent probability per class (a multi-label head);
- ``"logits"``: unnormalised scores;

and ``"unknown"`` when the graph's output is produced by something that is none of these and not
plausibly a linear layer either (e.g. ``Exp`` or ``Clip``): onnxplain then refuses to guess.

``output=`` says what the explainers see (the table is :func:`head_effect`):

=============  =============  ==============  ========================  ===========
output \\ head  softmax p      logsoftmax l    sigmoid q                 logits z
=============  =============  ==============  ========================  ===========
``"probs"``    p              exp(l)          q, as it is (warned)      softmax(z)
``"logits"``   log p          l               log(q / (1 − q))          z
``"raw"``      p              l               q                         z
=============  =============  ==============  ========================  ===========

A sigmoid head is never softmaxed: its per-class probabilities are what a multi-label model
means, and a softmax over them would invent a competition between classes the model does not
have. ``output="probs"`` on an ``"unknown"`` head is refused (declare ``head=`` or use
``output="raw"``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from onnxplain.errors import ModelLoadError

OutputHead = Literal["probs", "logits", "raw"]
Head = Literal["softmax", "logsoftmax", "sigmoid", "logits", "unknown"]
OUTPUTS: tuple[str, ...] = ("probs", "logits", "raw")
HEADS: tuple[str, ...] = ("softmax", "logsoftmax", "sigmoid", "logits")
"""Heads a user may declare (``head=``); detection may also answer ``"unknown"``."""

# Saturated float32 sigmoid outputs (exactly 0 or 1) are clipped before log(q / (1 − q)).
_SIGMOID_EPS = 2.0**-24


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    z = logits - logits.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def apply_head(raw: np.ndarray, head: Head, output: OutputHead) -> np.ndarray:
    """The scores explainers see: ``raw`` model outputs (N, K) turned into ``output`` (table above)."""
    if output == "raw" or head == "unknown":
        return raw
    if head == "softmax":
        return raw if output == "probs" else np.log(np.clip(raw, 1e-38, None))
    if head == "logsoftmax":
        return np.exp(raw) if output == "probs" else raw
    if head == "sigmoid":
        if output == "probs":
            return raw
        q = np.clip(raw, _SIGMOID_EPS, 1 - _SIGMOID_EPS)
        return np.log(q) - np.log1p(-q)
    return softmax(raw.astype(np.float32, copy=False)) if output == "probs" else raw


def head_effect(head: Head, output: OutputHead) -> str:
    """One sentence: what ``output`` does with the model's ``head`` (recorded by ``describe()``)."""
    if output == "raw":
        return "the model's outputs as they are"
    if head == "unknown":
        return "the model's outputs as they are (what they are could not be read from the graph)"
    table = {
        ("softmax", "probs"): "the model's own softmax probabilities (no second softmax)",
        ("softmax", "logits"): "log of the model's softmax probabilities (logits up to a per-sample constant)",
        ("logsoftmax", "probs"): "exp of the model's log-probabilities",
        ("logsoftmax", "logits"): "the model's log-probabilities (logits up to a per-sample constant)",
        ("sigmoid", "probs"): "the model's per-class sigmoid probabilities as they are (multi-label head: "
        "no softmax across classes)",
        ("sigmoid", "logits"): "the per-class log-odds log(q / (1 − q)) of the model's sigmoid outputs",
        ("logits", "probs"): "softmax of the model's logits",
        ("logits", "logits"): "the model's logits as they are",
    }
    return table[(head, output)]


def check_head_output(head: Head, output: OutputHead, source: str, what: str) -> None:
    """Refuse ``output="probs"`` when the head is unknown: a softmax there would be a guess."""
    if head == "unknown" and output == "probs":
        raise ModelLoadError(
            f"{source}: cannot tell what {what} holds, so output='probs' would be a guess; pass head='logits' "
            "(softmax is then applied), head='softmax' or head='sigmoid' if it holds probabilities, or "
            "output='raw' to explain the outputs as they are."
        )


def sigmoid_warning(source: str) -> str:
    """The one warning a sigmoid head gets under ``output="probs"``."""
    return (
        f"{source} ends in a Sigmoid (a multi-label head): output='probs' explains its per-class sigmoid "
        "probabilities as they are, without a softmax across classes; pass output='logits' for their "
        "per-class log-odds."
    )
