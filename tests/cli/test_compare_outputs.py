"""compare's outputs agree with each other and with the library: one aggregation per metric,
agreement at every scale, resumable maps, and --batch-size reaching every consumer."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from onnxplain.demo import demo_onnx_path, load_demo_digits

METRICS = ("aopc_deletion", "insertion_auc", "deletion_auc")


@pytest.fixture
def digits(tmp_path):
    x, _ = load_demo_digits()
    for i in (0, 1):
        np.save(tmp_path / f"d{i}.npy", x[i])
    return [tmp_path / "d0.npy", tmp_path / "d1.npy"]


def _compare(run_cli, digits, out, *extra):
    return run_cli("compare", "--onnx", "demo", "--torch", "demo", *digits, "--blackbox", "geex,rise",
                   "--whitebox", "ig", "-n", "64", "--steps", "4", "--metric-step", "28", "--out", out, *extra)


def _summary_cells(html: str) -> dict[str, list[str]]:
    table = re.search(r"<table class='summary'>(.*?)</table>", html, re.S).group(1)
    rows = re.findall(r"<tr><th>([^<]+)</th><td>[^<]*</td>(.*?)</tr>", table, re.S)
    return {method: re.findall(r"<td class='num[^']*'>([^<]*)</td>", cells)[: len(METRICS)] for method, cells in rows}


def test_report_summary_equals_results_json_and_the_library(tmp_path, digits, run_cli):
    out = tmp_path / "cmp"
    code, stdout, err = _compare(run_cli, digits, out)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    cells = _summary_cells((out / "report.html").read_text())
    assert set(cells) == {"geex", "rise", "ig"}
    for method, values in cells.items():
        assert values == [f"{doc['summary'][method][m]:.4g}" for m in METRICS], method
        for m in METRICS:  # the terminal table shows the same numbers
            assert f"{doc['summary'][method][m]:.4g}" in stdout
    # the library on the saved maps gives the same scores (the oracle of the aggregation)
    from onnxplain.evaluation import aopc_deletion, deletion_auc
    from onnxplain.models.onnx import OnnxModel

    model = OnnxModel(demo_onnx_path(), device="cpu")
    x = np.stack([np.load(p) for p in digits])
    targets = [im["target"] for im in doc["images"]]
    differs = False
    for method in cells:
        maps = np.stack([np.load(out / mp["file"]) for im in doc["images"] for mp in im["maps"] if mp["method"] == method])
        aopc = aopc_deletion(model, x, maps, target=targets, stride=28)
        assert doc["summary"][method]["aopc_deletion"] == pytest.approx(aopc.score, rel=1e-9)
        assert doc["summary"][method]["deletion_auc"] == pytest.approx(
            deletion_auc(model, x, maps, target=targets, step=28).score, rel=1e-9)
        per_image = [mp["metrics"]["aopc_deletion"] for im in doc["images"] for mp in im["maps"] if mp["method"] == method]
        np.testing.assert_allclose(per_image, aopc.per_image, rtol=1e-9)
        differs |= abs(float(np.mean(per_image)) - aopc.score) > 1e-6
    assert differs  # a mean of per-image AOPCs (the old report's number) would have disagreed


def test_agreement_at_every_scale(tmp_path, digits, run_cli):
    out = tmp_path / "cmp"
    code, stdout, err = _compare(run_cli, digits, out)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    for im in doc["images"]:
        agree = im["agreement"]
        assert list(agree["scales"]) == ["pixels", "28×28", "14×14"]
        assert agree["matrix"] == agree["scales"]["pixels"]["spearman"]
        for by_measure in agree["scales"].values():
            for matrix in by_measure.values():
                m = np.array(matrix, dtype=float)
                assert m.shape == (3, 3) and np.allclose(np.diag(m), 1) and np.allclose(m, m.T, equal_nan=True)
        # the demo's maps are 28×28: the "28×28" scale is the pixel scale
        assert agree["scales"]["28×28"] == agree["scales"]["pixels"]
    html = (out / "report.html").read_text()
    for title in ("Spearman, pixels", "Spearman, 14×14", "top-10 % intersection, 14×14"):
        assert f"Agreement between methods ({title})" in html
        assert f"Agreement between methods ({title}, mean over images)" in html
    assert "rho 14×14" in stdout and "top10% 14×14" in stdout
    header = next(line for line in stdout.splitlines() if line.startswith("method  vs"))
    assert header.split()[2:] == ["rho", "pixels", "rho", "28×28", "rho", "14×14", "top10%", "pixels",
                                  "top10%", "28×28", "top10%", "14×14"]


def test_compare_resumes_after_a_failure(tmp_path, digits, run_cli, monkeypatch, fail_on_call):
    """Maps are committed one by one (out/maps/index.json): a crash keeps the finished ones."""
    from onnxplain.gradients.integrated import IntegratedGradients

    original = fail_on_call(IntegratedGradients, 2)
    out = tmp_path / "cmp"
    code, _, err = _compare(run_cli, digits, out)
    assert code == 1 and "boom" in err and not (out / "results.json").exists()
    monkeypatch.setattr(IntegratedGradients, "explain", original)
    code, stdout, err = _compare(run_cli, digits, out)
    # image-major order: d0 geex, rise, ig; d1 geex, rise were finished before d1's ig failed
    assert code == 0 and "5 map(s) were reused" in stdout, stdout + err
    # another seed: the seeded methods' maps are recomputed, IG's (it draws nothing) are not
    code, stdout, _ = _compare(run_cli, digits, out, "--seed", "1")
    assert code == 0 and "2 map(s) were reused" in stdout


def test_batch_size_reaches_model_explainers_and_metrics(tmp_path, digits, run_cli, monkeypatch):
    from onnxplain.blackbox.geex import GEEX
    from onnxplain.evaluation import curves
    from onnxplain.gradients.integrated import IntegratedGradients
    from onnxplain.models.onnx import OnnxModel

    seen: dict[str, set] = {"chunks": set(), "geex": set(), "ig": set(), "metric": set()}
    forward, geex, ig, deletion = OnnxModel._forward, GEEX.explain, IntegratedGradients.explain, curves.deletion_auc

    def spy_forward(self, chunk):
        seen["chunks"].add(len(chunk))
        return forward(self, chunk)

    def spy_geex(self, *args, **kwargs):
        seen["geex"].add(self.queries_per_call)
        return geex(self, *args, **kwargs)

    def spy_ig(self, *args, **kwargs):
        seen["ig"].add(self.batch_size)
        return ig(self, *args, **kwargs)

    def spy_deletion(*args, **kwargs):
        seen["metric"].add(kwargs["batch_size"])
        return deletion(*args, **kwargs)

    monkeypatch.setattr(OnnxModel, "_forward", spy_forward)
    monkeypatch.setattr(GEEX, "explain", spy_geex)
    monkeypatch.setattr(IntegratedGradients, "explain", spy_ig)
    monkeypatch.setattr(curves, "deletion_auc", spy_deletion)
    code, _, err = _compare(run_cli, digits, tmp_path / "cmp", "--batch-size", "4", "--metrics", "deletion_auc")
    assert code == 0, err
    assert max(seen["chunks"]) == 4  # samples per ONNX Runtime call
    assert seen["geex"] == {4} and seen["ig"] == {4} and seen["metric"] == {4}
