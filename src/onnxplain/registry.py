"""Method and metric names (as used by the CLI and in results) mapped to their homes, imported lazily.

Black-box methods take any QueryModel; white-box methods take a ``torch.nn.Module``. Everything a
caller needs to configure a method is *declared* by its class (black-box:
:class:`~onnxplain.blackbox.base.BlackBoxExplainer`'s ``name``, ``budget_param``,
``uses_baseline``, ``queries_per_explicand``, keyword-only ``seed`` and ``queries_per_call``;
white-box: :class:`~onnxplain.gradients._common.GradientMethod`'s ``name``, ``budget_param``,
``seeded``, ``uses_baseline`` and ``batch_size``), and everything needed to call a metric by its
:class:`Metric` entry here, so no caller ever inspects a signature.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from onnxplain.errors import InvalidInputError

BLACKBOX: dict[str, str] = {
    "geex": "onnxplain.blackbox.geex:GEEX",
    "ge": "onnxplain.blackbox.geex:GE",
    "rise": "onnxplain.blackbox.rise:RISE",
    "lime": "onnxplain.blackbox.lime:LIME",
    "sobol": "onnxplain.blackbox.sobol:Sobol",
    "hsic": "onnxplain.blackbox.hsic:HSIC",
    "gefa": "onnxplain.blackbox.gefa:GEFA",
    "occlusion": "onnxplain.blackbox.occlusion:Occlusion",
    "kernelshap": "onnxplain.blackbox.kernelshap:KernelSHAP",
    "partitionshap": "onnxplain.blackbox.partition:PartitionSHAP",
}
WHITEBOX: dict[str, str] = {
    "saliency": "onnxplain.gradients.saliency:Saliency",
    "ig": "onnxplain.gradients.integrated:IntegratedGradients",
    "smoothgrad": "onnxplain.gradients.smoothgrad:SmoothGrad",
    "agi": "onnxplain.gradients.agi:AGI",
    "attexplore": "onnxplain.gradients.attexplore:AttEXplore",
    "la": "onnxplain.gradients.la:LA",
}
METHODS: dict[str, str] = {**BLACKBOX, **WHITEBOX}

Kind = Literal["black-box", "white-box"]


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_method(name: str) -> type[Any]:
    """The explainer class registered under ``name`` (case-insensitive)."""
    key = name.lower()
    if key not in METHODS:
        raise InvalidInputError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}.")
    return _load(METHODS[key])


def is_blackbox(name: str) -> bool:
    return name.lower() in BLACKBOX


def is_signed(name: str) -> bool:
    """Whether ``name``'s maps are signed contributions, as its class declares (``signed_map``):
    False for maps that are all-positive by construction (an expected score, e.g. RISE's
    E[f | pixel kept], or a sensitivity index such as Sobol's or HSIC's). Pictures show those minus
    their mean so both colours appear; rankings and metrics use the map as it is."""
    return bool(get_method(name).signed_map)


def method_kind(name: str) -> Kind:
    """``"black-box"`` or ``"white-box"`` (an unknown name raises the registry's error)."""
    if name.lower() not in METHODS:
        get_method(name)
    return "black-box" if is_blackbox(name) else "white-box"


def check_kind(name: str, kind: Kind | None) -> None:
    """Refuse ``name`` when it is not of ``kind`` (one sentence naming the methods of that kind)."""
    actual = method_kind(name)
    if kind is None or kind == actual:
        return
    if kind == "black-box":
        raise InvalidInputError(
            f"{name!r} is a white-box method (it needs the torch model); use 'onnxplain compare'. "
            f"Black-box methods: {', '.join(BLACKBOX)}."
        )
    raise InvalidInputError(f"{name!r} is a black-box method; white-box methods: {', '.join(WHITEBOX)}.")


def method_kwargs(
    name: str,
    *,
    budget: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    baseline: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Constructor arguments of method ``name`` from the declared metadata of its class.

    ``budget`` goes to the class's ``budget_param`` (queries of a black-box method, steps or
    samples of a white-box one; a method without one, e.g. Saliency, ignores it), ``seed`` to every
    black-box method and to white-box methods that declare ``seeded``, ``batch_size`` to
    ``queries_per_call`` (black-box: queries per model call) or ``batch_size`` (white-box: samples
    per forward/backward pass), ``baseline`` to methods that declare ``uses_baseline``. ``extra``
    holds further constructor arguments (e.g. a demo's budgets), overridden by the others.
    """
    cls = get_method(name)
    blackbox = is_blackbox(name)
    kwargs: dict[str, Any] = dict(extra or {})
    if budget is not None and cls.budget_param is not None:
        kwargs[cls.budget_param] = int(budget)
    if seed is not None and (blackbox or cls.seeded):
        kwargs["seed"] = int(seed)
    if batch_size is not None:
        kwargs["queries_per_call" if blackbox else "batch_size"] = int(batch_size)
    if baseline is not None and cls.uses_baseline:
        kwargs["baseline"] = baseline
    return kwargs


def build_method(name: str, *, kind: Kind | None = None, **options: Any) -> Any:
    """An instance of method ``name`` (of ``kind``, if given) configured by :func:`method_kwargs`."""
    check_kind(name, kind)
    return get_method(name)(**method_kwargs(name, **options))


# -- metrics ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """A query-only metric's declared metadata (in the manner of Quantus' class attributes).

    Attributes:
        name: registry name (also ``MetricResult.name``).
        function: ``"module:function"`` taking ``(model, x, attributions, *, target, …)``.
        higher_is_better: how to read its score.
        step_param: the argument setting the pixels changed between two curve points (``--metric-step``),
            or None for a metric without a curve.
        seeded: whether it draws random numbers (and takes ``seed``).
        description: the protocol in one line (legends of the report).
        fixed_queries: queries per explicand of a metric without a curve.
    """

    name: str
    function: str
    higher_is_better: bool
    step_param: str | None
    seeded: bool
    description: str
    fixed_queries: int = 0

    def load(self) -> Any:
        return _load(self.function)

    def queries_per_explicand(self, input_shape: Sequence[int], step: int) -> int:
        """Model queries one explicand costs: a curve has ⌈H·W/step⌉ + 1 points."""
        if self.step_param is None:
            return self.fixed_queries
        h, w = int(input_shape[-2]), int(input_shape[-1])
        return math.ceil(h * w / step) + 1

    def __call__(
        self, model: Any, x: Any, maps: Any, *, target: Any, step: int, seed: int, batch_size: int | None = None
    ) -> Any:
        """The metric's :class:`~onnxplain.evaluation.MetricResult` with the protocol's options set."""
        kwargs: dict[str, Any] = {"target": target, "batch_size": batch_size}
        if self.step_param is not None:
            kwargs[self.step_param] = int(step)
        if self.seeded:
            kwargs["seed"] = int(seed)
        return self.load()(model, x, maps, **kwargs)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "aopc_deletion", "onnxplain.evaluation.aopc:aopc_deletion", True, "stride", True,
            "GEEX paper protocol: normalised area over the deletion curve (ratio of the mean curve), "
            "pixels replaced by 0",
        ),
        Metric(
            "insertion_auc", "onnxplain.evaluation.curves:insertion_auc", True, "step", False,
            "RISE/LA protocol: area under the score curve while pixels are restored onto a zero image",
        ),
        Metric(
            "deletion_auc", "onnxplain.evaluation.curves:deletion_auc", False, "step", False,
            "RISE/LA protocol: area under the score curve while pixels are set to 0",
        ),
        Metric(
            "infidelity", "onnxplain.evaluation.infidelity:infidelity", False, None, True,
            "Yeh et al.: mean squared error of the map's linear prediction of score changes under "
            "100 random subset perturbations (scale-normalised)",
            fixed_queries=101,
        ),
    )
}
DEFAULT_METRICS: tuple[str, ...] = ("aopc_deletion", "insertion_auc", "deletion_auc")


def get_metric(name: str) -> Metric:
    """The metric registered under ``name``."""
    key = name.lower()
    if key not in METRICS:
        raise InvalidInputError(f"unknown metric {name!r}; choose from: {', '.join(METRICS)}.")
    return METRICS[key]
