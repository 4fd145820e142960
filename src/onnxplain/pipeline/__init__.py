"""The work behind the commands, as library functions that return data and print nothing.

parity → targets → maps (through the one result cache) → metrics → agreement → report data and
JSON. ``onnxplain.cli`` only parses arguments, calls these and prints what they return.

- :mod:`.predict`: :func:`predict` (targets), :func:`check_parity` (ONNX vs torch);
- :mod:`.cache`: :class:`ResultCache`, the resume mechanism of explain, compare and the dataset runner;
- :mod:`.maps`: :class:`MethodRun`, :func:`explain_maps`;
- :mod:`.evaluate`: metrics by their registry metadata, the one summary, agreement at several scales;
- :mod:`.explain`: :func:`run_explain`; :mod:`.compare`: :func:`compare_parity`, :func:`run_compare`;
- :mod:`.dataset`: :class:`DatasetExecutor` (maps computed by ``explain_dataset``);
- :mod:`.progress`: :class:`Progress`, how a caller follows the work.
"""

from __future__ import annotations

import importlib
from typing import Any

from onnxplain.pipeline.cache import JsonIndex, ResultCache, RowIndex, settings_key
from onnxplain.pipeline.progress import Progress

# Imported on first use, so that the dataset runner (which uses the cache) stays light.
_LAZY = {
    "predict": "predict", "check_parity": "predict", "Predictions": "predict",
    "MethodRun": "maps", "explain_maps": "maps",
    "evaluate_maps": "evaluate", "evaluate_saved": "evaluate", "summarise": "evaluate",
    "agreement_tables": "evaluate", "default_step": "evaluate",
    "ExplainJob": "explain", "run_explain": "explain",
    "CompareJob": "compare", "compare_parity": "compare", "run_compare": "compare",
    "DatasetExecutor": "dataset",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"onnxplain.pipeline.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'onnxplain.pipeline' has no attribute {name!r}")


__all__ = ["JsonIndex", "Progress", "ResultCache", "RowIndex", "settings_key", *_LAZY]
