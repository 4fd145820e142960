"""Model-parameter randomisation test (Adebayo et al. 2018, "Sanity Checks for Saliency Maps", §3).

The layers of a trained torch model are re-initialised cumulatively from the output layer
down ("cascading randomisation"). After each step the randomised model is exported to ONNX and
explained again, with a black-box method on the ONNX model and a white-box method on the torch
module, for the class the *original* model predicted. A method whose map still has a high rank
correlation with the original map after the weights are destroyed does not explain the model.

torch and the exporter are imported inside :func:`randomisation_check` only.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onnxplain.checks import check_choice, check_float_array, check_seed, check_targets
from onnxplain.errors import InvalidInputError
from onnxplain.evaluation.agreement import reduce_maps, spearman_rows
from onnxplain.evaluation.result import MetricResult
from onnxplain.models.heads import OUTPUTS

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class RandomisationCheck:
    """Per-layer rank correlations of re-explained maps with the original maps.

    Attributes:
        layers: the randomised layers in cascade order (output first); step i has layers[:i+1]
            randomised.
        blackbox, whitebox: MetricResults whose ``curve`` holds the mean Spearman correlation per
            step (step 0 = the trained model, 1.0 by construction), ``curves`` the per-image values,
            ``score`` the mean over the randomised steps (lower is better: the map must change).
        abs_curves: the same correlations on absolute maps (Adebayo et al. report both).
        predictions: the randomised models' top class per explicand and step.
    """

    layers: list[str]
    blackbox: MetricResult
    whitebox: MetricResult
    abs_curves: dict[str, np.ndarray] = field(default_factory=dict)
    predictions: np.ndarray | None = None

    def table(self) -> list[dict[str, Any]]:
        """One row per step: layer, black-box and white-box mean Spearman."""
        names = ["(trained)"] + self.layers
        bb = self.blackbox.curve if self.blackbox.curve is not None else []
        wb = self.whitebox.curve if self.whitebox.curve is not None else []
        return [
            {"layer": n, "blackbox_spearman": float(b), "whitebox_spearman": float(w)}
            for n, b, w in zip(names, bb, wb, strict=True)
        ]


def parameter_layers(module: torch.nn.Module) -> list[str]:
    """Names of the submodules that own parameters directly, in registration order."""
    return [name for name, m in module.named_modules() if any(True for _ in m.parameters(recurse=False))]


def _randomise_layer(layer: torch.nn.Module, generator: torch.Generator) -> None:
    """Re-initialise one layer's parameters from ``generator``.

    Weights with ≥ 2 dims and the layer's other parameters get torch's default Linear/Conv
    initialisation range U(−1/√fan_in, 1/√fan_in) with fan_in of the weight; layers with 1-D
    parameters only (normalisation) get N(mean, std²) matched to each tensor (std 1 if it is 0).
    """
    import torch

    params = list(layer.parameters(recurse=False))
    weights = [p for p in params if p.ndim >= 2]
    with torch.no_grad():
        if weights:
            fan_in = int(np.prod(weights[0].shape[1:]))
            bound = 1.0 / np.sqrt(max(fan_in, 1))
            for p in params:
                draw = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                p.copy_((2 * draw - 1) * bound)
        else:
            for p in params:
                std = float(p.detach().double().std()) if p.numel() > 1 else 0.0
                std = std if std > 0 else 1.0
                mean = float(p.detach().double().mean())
                p.copy_(mean + std * torch.randn(p.shape, generator=generator, dtype=torch.float64))


def _check_arguments(
    module: Any,
    x: Any,
    blackbox: Any,
    whitebox: Any,
    target: Any,
    layers: Sequence[str] | None,
    input_shape: Sequence[int] | None,
    output: str,
    reduce: str,
    seed: Any,
    work_dir: str | Path | None,
) -> tuple[np.ndarray, list[str]]:
    """Every argument of :func:`randomisation_check` checked before any export: the (B,C,H,W)
    explicands and the layers to randomise, output first."""
    import torch

    from onnxplain.blackbox.base import BlackBoxExplainer
    from onnxplain.gradients._common import GradientMethod

    if not isinstance(module, torch.nn.Module):
        raise InvalidInputError("randomisation_check needs a torch.nn.Module.")
    if not callable(getattr(blackbox, "explain", None)) or isinstance(blackbox, GradientMethod):
        raise InvalidInputError(f"blackbox must be a configured black-box explainer (e.g. GEEX(...)), not {blackbox!r}.")
    if not callable(getattr(whitebox, "explain", None)) or isinstance(whitebox, BlackBoxExplainer):
        raise InvalidInputError(
            f"whitebox must be a configured white-box explainer (e.g. IntegratedGradients()), not {whitebox!r}."
        )
    xb = check_float_array("x", x)
    xb = xb[None] if xb.ndim == 3 else xb
    if xb.ndim != 4 or 0 in xb.shape or not np.isfinite(xb).all():
        raise InvalidInputError(f"x must be a finite (C,H,W) image or (B,C,H,W) batch, got shape {xb.shape}.")
    if input_shape is not None and tuple(input_shape) != tuple(xb.shape[1:]):
        raise InvalidInputError(f"input_shape {tuple(input_shape)} does not match x's explicands {tuple(xb.shape[1:])}.")
    check_choice("output", output, OUTPUTS)
    check_choice("reduce", reduce, ("mean", "sum", "abs"))
    check_seed(seed)
    check_targets(target, len(xb))  # the class count is known after the first forward
    if work_dir is not None and Path(work_dir).exists() and not Path(work_dir).is_dir():
        raise InvalidInputError(f"work_dir {str(work_dir)!r} exists and is not a directory.")
    known = parameter_layers(module)
    if not known:
        raise InvalidInputError("the module has no parameters to randomise.")
    order = list(layers) if layers is not None else known[::-1]
    unknown = [name for name in order if name not in known]
    if unknown:
        raise InvalidInputError(f"unknown layer {unknown[0]!r}; layers with parameters: {', '.join(known)}.")
    if not order:
        raise InvalidInputError("layers must name at least one layer.")
    return np.ascontiguousarray(xb), order


def randomisation_check(
    module: torch.nn.Module,
    x: Any,
    *,
    blackbox: Any,
    whitebox: Any,
    target: Any = None,
    layers: Sequence[str] | None = None,
    input_shape: Sequence[int] | None = None,
    output: str = "probs",
    reduce: str = "mean",
    seed: int = 0,
    work_dir: str | Path | None = None,
) -> RandomisationCheck:
    """Cascading parameter randomisation of ``module``, re-explained per step.

    Args:
        module: the trained torch model (taking the explicand space, e.g. [0,1] pixels).
        x: one explicand (C,H,W) or a batch (B,C,H,W).
        blackbox: a configured black-box explainer (``explain(QueryModel, x, target)``), run on the
            ONNX export of each randomised model.
        whitebox: a configured white-box explainer (``explain(nn.Module, x, target)``).
        target: class(es) to explain; default the trained model's prediction (kept for all steps).
        layers: layer names to randomise, output first; default all parameter-owning
            submodules in reverse registration order.
        input_shape: one sample's shape for the export (default x's).
        output: output head of the ONNX QueryModel (``"probs"``).
        reduce: channel reduction before the rank correlation.
        seed: seeds the re-initialisation (one torch.Generator) so the check is reproducible.
        work_dir: where the exported ONNX files go (default a temporary directory, removed after).
    """
    import torch

    from onnxplain.export import export_onnx
    from onnxplain.models.onnx import OnnxModel

    xb, order = _check_arguments(module, x, blackbox, whitebox, target, layers, input_shape, output, reduce, seed, work_dir)
    shape = tuple(xb.shape[1:])
    model = copy.deepcopy(module).eval()
    with torch.no_grad():
        try:
            logits = model(torch.from_numpy(xb)).double().numpy()
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InvalidInputError(f"the module cannot run on explicands of shape {shape}: {first}") from exc
    t = check_targets(target, len(xb), logits.shape[1])
    targets = logits.argmax(axis=1) if t is None else t
    generator = torch.Generator().manual_seed(int(seed))
    named = dict(model.named_modules())

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        maps_bb: list[np.ndarray] = []
        maps_wb: list[np.ndarray] = []
        preds: list[np.ndarray] = []
        for step in range(len(order) + 1):
            if step > 0:
                _randomise_layer(named[order[step - 1]], generator)
            path = folder / f"randomised_{step:02d}.onnx"
            export_onnx(model, path, shape)
            query_model = OnnxModel(path, output=output)
            preds.append(np.asarray(query_model(xb)).argmax(axis=1))
            maps_bb.append(reduce_maps(np.asarray(blackbox.explain(query_model, xb, target=targets).attributions), reduce))
            maps_wb.append(reduce_maps(np.asarray(whitebox.explain(model, xb, target=targets).attributions), reduce))

    def correlations(maps: list[np.ndarray], absolute: bool) -> np.ndarray:
        ref = maps[0].reshape(len(xb), -1)
        rows = [
            spearman_rows(np.abs(ref) if absolute else ref, np.abs(m.reshape(len(xb), -1)) if absolute else m.reshape(len(xb), -1))
            for m in maps
        ]
        return np.stack(rows, axis=1)  # (B, steps + 1)

    params = {"layers": order, "seed": seed, "reduce": reduce, "output": output, "targets": targets}

    def result(maps: list[np.ndarray], method: Any) -> MetricResult:
        curves = correlations(maps, absolute=False)
        curve = np.nanmean(curves, axis=0)
        return MetricResult(
            name=f"randomisation_spearman[{getattr(method, 'name', type(method).__name__)}]",
            score=float(np.nanmean(curve[1:])),
            higher_is_better=False,
            curve=curve,
            x_axis=np.arange(len(curve), dtype=np.float64),
            curves=curves,
            per_image=np.nanmean(curves[:, 1:], axis=1),
            params=params,
        )

    return RandomisationCheck(
        layers=order,
        blackbox=result(maps_bb, blackbox),
        whitebox=result(maps_wb, whitebox),
        abs_curves={
            "blackbox": np.nanmean(correlations(maps_bb, True), axis=0),
            "whitebox": np.nanmean(correlations(maps_wb, True), axis=0),
        },
        predictions=np.stack(preds, axis=1),
    )
