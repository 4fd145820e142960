from __future__ import annotations

import numpy as np
import pytest

from onnxplain.report.data import ImageResult, MapResult, MetricInfo, ReportData

HOSTILE = "<script>alert('x')</script>&\"quote\""


def make_report(n_images: int = 2, label: str = HOSTILE) -> ReportData:
    """A report with hostile label/path text, signed maps of both kinds, curves and an agreement matrix."""
    rng = np.random.default_rng(0)
    methods = [("geex", "black-box"), ("rise", "black-box"), ("ig", "white-box"), ("la", "white-box")]
    images = []
    for k in range(n_images):
        x = rng.random((3, 12, 12)).astype(np.float32)
        maps = [
            MapResult(
                m,
                kind,  # type: ignore[arg-type]
                rng.normal(size=(12, 12)) * (10.0 if m == "rise" else 1.0),
                {"aopc_deletion": float(rng.random()), "deletion_auc": float(rng.random())},
                n_queries=100,
                n_backward=0 if kind == "black-box" else 40,
                seconds=0.1,
                completeness_gap=0.01,
                diagnostics={"r2": 0.5, "note": "<b>not shown</b>"},
            )
            for m, kind in methods
        ]
        t = np.linspace(0, 1, 30)
        images.append(
            ImageResult(
                name=f"img{k}{label}",
                source=f"/data/{label}/x{k}.png",
                image=x,
                target=1,
                label=label,
                score=0.9,
                true_label=label,
                top=[(label, 0.9), ("other", 0.1)],
                maps=maps,
                curves={"deletion_auc": {m: (t, np.exp(-(i + 1) * t)) for i, (m, _) in enumerate(methods)}},
                agreement_methods=[m for m, _ in methods],
                agreement=np.corrcoef(rng.normal(size=(4, 20))),
            )
        )
    return ReportData(
        title=f"report {label}",
        images=images,
        metrics=[MetricInfo("aopc_deletion", True, "GEEX AOPC"), MetricInfo("deletion_auc", False, label)],
        summary={m: {"aopc_deletion": 0.5 + 0.1 * i, "deletion_auc": 0.3 - 0.05 * i} for i, (m, _) in enumerate(methods)},
        settings={"seed": 0, "path": label},
        method_params={"geex": {"n_queries": 100, "baseline": label}},
        model={"ONNX model": f"/m/{label}.onnx"},
        parity={"ok": False, "max |Δ probability|": 0.5},
        command=f"onnxplain compare {label}",
        notes=[f"note {label}"],
    )


@pytest.fixture
def report_data() -> ReportData:
    return make_report()


@pytest.fixture
def report_factory():
    return make_report


@pytest.fixture
def hostile() -> str:
    return HOSTILE
