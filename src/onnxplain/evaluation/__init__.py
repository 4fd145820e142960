"""Query-only evaluation of attribution maps: faithfulness, agreement and sanity.

Every metric sees the model only through ``model(batch)`` (so it runs on the ONNX model under
audit as well as on a torch one), streams its queries in chunks, is seeded where it draws random
numbers, and returns a :class:`MetricResult` that declares ``higher_is_better``.

Two deletion protocols exist and are never mixed: the GEEX paper's normalised AOPC
(:func:`aopc_deletion`) and the RISE/LA insertion/deletion AUC (:func:`insertion_auc`,
:func:`deletion_auc`, ``mode="pixel"`` or ``"dimension"``).
"""

from onnxplain.evaluation.agreement import agreement, agreement_scales
from onnxplain.evaluation.aopc import aopc_deletion
from onnxplain.evaluation.completeness import completeness_gap
from onnxplain.evaluation.curves import deletion_auc, insertion_auc
from onnxplain.evaluation.infidelity import infidelity
from onnxplain.evaluation.random_order import random_order_reference
from onnxplain.evaluation.result import MetricResult
from onnxplain.evaluation.sanity import RandomisationCheck, randomisation_check

__all__ = [
    "MetricResult",
    "RandomisationCheck",
    "agreement",
    "agreement_scales",
    "aopc_deletion",
    "completeness_gap",
    "deletion_auc",
    "infidelity",
    "insertion_auc",
    "random_order_reference",
    "randomisation_check",
]
