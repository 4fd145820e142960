"""The methods of the real-photo fidelity benchmark and how each one is built.

* every black-box method of :data:`onnxplain.registry.BLACKBOX` (new ones appear there as they land),
  explained at each budget: ``cls(**{cls.budget_param: budget}, seed=seed)``, all else at defaults;
* every white-box method of :data:`onnxplain.registry.WHITEBOX` at its defaults (seeded ones get
  the seed), run on the model's torch twin; no budget;
* ``ig-ref``: the GEEX paper's ImageNet reference ``IntegratedGradients(steps=128, baseline="blur")``
  (blurred explicand, kernel 31, σ 5), the map every other map is compared with;
* ``random``: a uniformly random pixel order, its own for every photo (i.i.d. uniform keys from
  ``numpy.random.default_rng([seed, 1, crc32(photo name)])``; what
  :func:`onnxplain.evaluation.random_order_reference` does for a batch), the floor of every curve
  metric.
"""

from __future__ import annotations

import ast
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from onnxplain import registry
from onnxplain.errors import InvalidInputError

Kind = Literal["blackbox", "whitebox", "random"]
REFERENCE = "ig-ref"
RANDOM = "random"
REFERENCE_KWARGS: dict[str, Any] = {"steps": 128, "baseline": "blur"}


class MethodError(ValueError):
    """An unknown method name in ``--methods``."""


@dataclass(frozen=True)
class Spec:
    """One row family of the table: a registry method (or the references) and how to build it."""

    key: str
    kind: Kind
    registry_name: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.key == REFERENCE:
            return "IG (blur, 128 steps), reference"
        if self.key == RANDOM:
            return "random order"
        if self.kind == "whitebox":
            return f"{self.key} (white-box{'' if '[' in self.key else ', defaults'})"
        return self.key

    @property
    def has_budget(self) -> bool:
        return self.kind == "blackbox"

    def seeded(self) -> bool:
        """Whether the seed changes the map (deterministic white-box methods run once, seed None)."""
        if self.kind != "whitebox":
            return True
        return bool(getattr(self.cls(), "seeded", False))

    def cls(self) -> type[Any]:
        assert self.registry_name is not None
        return registry.get_method(self.registry_name)

    def budgets(self, budgets: tuple[int, ...]) -> tuple[int | None, ...]:
        return budgets if self.has_budget else (None,)

    def seeds(self, seeds: tuple[int, ...]) -> tuple[int | None, ...]:
        return seeds if self.seeded() else (None,)

    def build(self, budget: int | None, seed: int | None) -> Any:
        """The configured explainer (never for ``random``)."""
        cls = self.cls()
        kwargs = dict(self.kwargs)
        if self.kind == "blackbox":
            if budget is None:
                raise ValueError(f"{self.key} needs a budget")
            kwargs[cls.budget_param] = int(budget)
        if seed is not None and (self.kind == "blackbox" or getattr(cls, "seeded", False)):
            kwargs["seed"] = int(seed)
        return cls(**kwargs)

    def config(self, budget: int | None, seed: int | None) -> dict[str, Any]:
        """What decides the map: class and every hyper-parameter (a cached map is reused only if equal)."""
        from onnxplain._io import to_jsonable

        if self.kind == "random":
            return {
                "method": RANDOM,
                "order": "uniform keys, default_rng([seed, 1, crc32(photo)])",
                "seed": seed,
            }
        cls = self.cls()
        method = self.build(budget, seed)
        return {
            "method": self.key,
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "params": to_jsonable(method.params()),
        }


def random_map(height: int, width: int, seed: int, photo: str) -> np.ndarray:
    """The random order's (H, W) keys for one photo: i.i.d. U[0, 1), so a uniform permutation."""
    return np.random.default_rng([seed, 1, zlib.crc32(photo.encode())]).random((height, width))


def all_specs() -> list[Spec]:
    """Every black-box method, every white-box method, the IG reference and the random order."""
    specs = [Spec(name, "blackbox", name) for name in registry.BLACKBOX]
    specs += [Spec(name, "whitebox", name) for name in registry.WHITEBOX]
    specs.append(Spec(REFERENCE, "whitebox", "ig", dict(REFERENCE_KWARGS)))
    specs.append(Spec(RANDOM, "random"))
    return specs


def _split(text: str) -> list[str]:
    """Split on the commas outside brackets: ``"geex[sigma=0.05,baseline=blur],rise"`` → 2 parts."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _variant(base: Spec, text: str, options: str) -> Spec:
    """``name[k=v,…]``: the registry method with these constructor arguments (values read as
    Python literals, else strings), stored and shown under the full text."""
    kwargs: dict[str, Any] = dict(base.kwargs)
    for pair in _split(options):
        name, eq, value = pair.partition("=")
        if not eq or not name.strip().isidentifier():
            raise MethodError(f"method variant {text!r}: write name[arg=value,...], not {pair!r}.")
        try:
            kwargs[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[name.strip()] = value.strip()
    spec = Spec(text, base.kind, base.registry_name, kwargs)
    try:
        spec.build(1000 if spec.has_budget else None, 0)
    except (TypeError, InvalidInputError) as exc:
        raise MethodError(f"method variant {text!r}: {exc}.") from None
    return spec


def parse_methods(text: str | None) -> list[Spec]:
    """``--methods``: comma-separated keys (``None``/``"all"`` = :func:`all_specs`); ``name[k=v,…]``
    adds a variant of a registry method, e.g. ``all,geex[baseline=blur]``.

    The IG reference and the random order are always added: the agreement columns and the goals
    need the first, every curve metric is read against the second.
    """
    specs = all_specs()
    by_key = {s.key: s for s in specs}
    chosen: dict[str, Spec] = {}
    unknown = []
    for raw in _split(text or "all"):
        base, bracket, rest = raw.partition("[")
        base = base.strip().lower()
        name = base + bracket + rest
        if base == "all" and not bracket:
            chosen.update((s.key, s) for s in specs if s.key not in (REFERENCE, RANDOM))
        elif base not in by_key or (bracket and (not rest.endswith("]") or base in (REFERENCE, RANDOM))):
            unknown.append(name)
        else:
            chosen[name] = _variant(by_key[base], name, rest[:-1]) if bracket else by_key[base]
    if unknown or not chosen:
        raise MethodError(
            f"unknown method(s) {', '.join(unknown) or '(none given)'}; choose from all, {', '.join(by_key)} "
            "(a variant: name[arg=value,...])."
        )
    for extra in (REFERENCE, RANDOM):
        chosen.setdefault(extra, by_key[extra])
    return list(chosen.values())
