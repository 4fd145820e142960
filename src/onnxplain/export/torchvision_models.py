"""torchvision classifiers by name, with weights from a local file only (never a download)."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from onnxplain.errors import InvalidInputError, ModelLoadError, UnsafeWeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state_dict with ``torch.load(weights_only=True)``: tensors only, no arbitrary objects.

    Accepts a bare state_dict or one nested under ``"state_dict"`` / ``"model"``; strips the
    ``"module."`` prefix DataParallel adds.
    """
    file = Path(path)
    if not file.is_file():
        raise ModelLoadError(f"weights file {str(file)!r} does not exist.")
    try:
        state: Any = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # anything else is a corrupt file
            raise ModelLoadError(f"{file} is not a torch weights file ({str(exc).splitlines()[0]}).") from exc
        raise UnsafeWeightsError(
            f"{file} holds arbitrary Python objects; onnxplain loads weights only with "
            "torch.load(weights_only=True). Save the model's state_dict() instead."
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise ModelLoadError(f"{file} is not a torch weights file ({str(exc).splitlines()[0]}).") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{file} does not hold a state_dict of tensors.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_torchvision(
    arch: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    num_classes: int = 1000,
    transform_input: bool | None = None,
) -> torch.nn.Module:
    """A torchvision classifier ``arch`` in eval mode, with weights from a local file (or random).

    InceptionV3/GoogLeNet: torchvision's pretrained weights expect ``transform_input=True`` (it
    re-maps ImageNet-normalised input inside the model) and carry auxiliary heads; we build the
    model with the aux heads so the file loads, then drop them so eval and export have one output.
    ``transform_input`` defaults to True when weights are given for these two architectures.
    """
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(arch)
    except ValueError as exc:
        raise InvalidInputError(f"unknown torchvision architecture {arch!r}.") from exc
    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    has_aux = arch in ("inception_v3", "googlenet")
    if has_aux:
        kwargs["aux_logits"] = True
        kwargs["init_weights"] = weights is None
        kwargs["transform_input"] = transform_input if transform_input is not None else weights is not None
    model = builder(**kwargs)
    if weights is not None:
        state = load_state_dict(weights)
        try:
            model.load_state_dict(state, strict=not has_aux)
        except RuntimeError as exc:
            raise ModelLoadError(f"{weights} does not fit {arch}: {str(exc).splitlines()[0]}") from exc
    if has_aux:
        model.aux_logits = False
        for name in ("AuxLogits", "aux1", "aux2"):
            if hasattr(model, name):
                setattr(model, name, None)
    return model.eval()
