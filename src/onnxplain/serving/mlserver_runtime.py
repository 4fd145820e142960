"""An MLServer custom runtime that serves an ONNX file with ONNX Runtime (CPU).

MLServer (https://mlserver.readthedocs.io) speaks the same v2 protocol as Triton and KServe;
this runtime lets it serve any ONNX classifier, so :class:`~onnxplain.models.RemoteModel` can
explain it. It is the only module of onnxplain that imports ``mlserver``. ``model-settings.json``::

    {"name": "mnist",
     "implementation": "onnxplain.serving.mlserver_runtime.OnnxRuntimeModel",
     "parameters": {"uri": "./model.onnx", "extra": {"intra_op_threads": 1}}}

``uri`` is the ONNX file (relative to the settings file's folder); ``extra.intra_op_threads`` sets
ONNX Runtime's intra-op threads (0, the default, lets ORT choose). Declaring ``inputs`` and
``outputs`` there is optional: MLServer publishes them as the model metadata; without them the
metadata lists none and RemoteModel needs ``input_name``, ``output_name``, ``input_shape`` and
``num_classes`` (``--input-name``, ``--output-name``, ``--input-shape``, ``--num-classes``).

A request naming an unknown input or output, or a tensor ONNX Runtime refuses (wrong datatype or
shape), is answered HTTP 400 with the reason; any other failure HTTP 500.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri

__all__ = ["OnnxRuntimeModel"]


class OnnxRuntimeModel(MLModel):
    """``load`` opens an ONNX Runtime session on ``parameters.uri``; ``predict`` runs it."""

    async def load(self) -> bool:
        import onnxruntime as ort

        path = await get_model_uri(self.settings, wellknown_filenames=["model.onnx"])
        extra: dict[str, Any] = (self.settings.parameters.extra or {}) if self.settings.parameters else {}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(extra.get("intra_op_threads", 0))
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._inputs = {t.name for t in self._session.get_inputs()}
        self._outputs = [t.name for t in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds: dict[str, np.ndarray] = {}
        for tensor in payload.inputs:
            if tensor.name not in self._inputs:
                raise MLServerError(f"unknown input {tensor.name!r}; the model takes {sorted(self._inputs)}", 400)
            feeds[tensor.name] = NumpyCodec.decode_input(tensor)
        names = [o.name for o in payload.outputs] if payload.outputs else self._outputs
        unknown = [n for n in names if n not in self._outputs]
        if unknown or set(feeds) != self._inputs:
            raise MLServerError(
                f"the model takes inputs {sorted(self._inputs)} and has outputs {self._outputs}", 400
            )
        try:
            results = self._session.run(names, feeds)
        except Exception as exc:  # ORT's own exception types; InvalidArgument is the caller's fault
            status = 400 if type(exc).__name__ == "InvalidArgument" else 500
            raise MLServerError(f"ONNX Runtime refused the request ({exc})", status) from exc
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[NumpyCodec.encode_output(n, np.asarray(v)) for n, v in zip(names, results, strict=True)],
        )
