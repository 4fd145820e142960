"""Query-only explainers: GEEX and GE (Cai & Wunder 2024), RISE (Petsiuk et al. 2018), LIME
(Ribeiro et al. 2016), Sobol attribution (Fel et al. 2021), HSIC attribution (Novello et al. 2022),
GEFA (Cai, Ardoin & Wunder 2025), Occlusion (Zeiler & Fergus 2014), KernelSHAP (Lundberg & Lee
2017) and Partition SHAP (Owen values, shap's PartitionExplainer). Each takes any
:class:`~onnxplain.models.base.QueryModel` and returns an :class:`~onnxplain.explanation.Explanation`;
perturbations stream from a seeded generator.

Every method is a :class:`~onnxplain.blackbox.base.BlackBoxExplainer`: adding one is a module
with its estimator, its tests and a line in :mod:`onnxplain.registry`.
"""

from __future__ import annotations

from onnxplain.blackbox.base import BlackBoxExplainer
from onnxplain.blackbox.geex import GE, GEEX
from onnxplain.blackbox.gefa import GEFA
from onnxplain.blackbox.hsic import HSIC
from onnxplain.blackbox.kernelshap import KernelSHAP
from onnxplain.blackbox.lime import LIME
from onnxplain.blackbox.occlusion import Occlusion
from onnxplain.blackbox.partition import PartitionSHAP
from onnxplain.blackbox.rise import RISE
from onnxplain.blackbox.sobol import Sobol

__all__ = [
    "GE",
    "GEEX",
    "GEFA",
    "HSIC",
    "LIME",
    "RISE",
    "BlackBoxExplainer",
    "KernelSHAP",
    "Occlusion",
    "PartitionSHAP",
    "Sobol",
]
