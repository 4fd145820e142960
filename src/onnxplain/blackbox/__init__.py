"""Query-only explainers: GEEX and GE (Cai & Wunder 2024), RISE (Petsiuk et al. 2018), LIME
(Ribeiro et al. 2016). Each takes any :class:`~onnxplain.models.base.QueryModel` and returns an
:class:`~onnxplain.explanation.Explanation`; perturbations stream from a seeded generator."""

from __future__ import annotations

from onnxplain.blackbox.geex import GE, GEEX
from onnxplain.blackbox.lime import LIME
from onnxplain.blackbox.rise import RISE

__all__ = ["GE", "GEEX", "LIME", "RISE"]
