"""Serving an ONNX model over the KServe v2 protocol: onnxplain's own small server and an MLServer
runtime, both sharing the protocol module (:mod:`onnxplain.serving.protocol`) with
:class:`~onnxplain.models.RemoteModel`.

* ``python -m onnxplain.serving model.onnx --port 8000``: :class:`V2Server` (stdlib HTTP, ONNX
  Runtime), for trying RemoteModel and testing it on loopback.
* :mod:`onnxplain.serving.mlserver_runtime`: ``OnnxRuntimeModel``, a custom runtime for a real
  MLServer (``implementation`` in its ``model-settings.json``); it alone imports ``mlserver``.
"""

from __future__ import annotations

from onnxplain.serving.server import V2Handler, V2Server, main

__all__ = ["V2Handler", "V2Server", "main"]
