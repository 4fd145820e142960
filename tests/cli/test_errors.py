"""Errors that speak CLI: every bad input ends with exit 2 and one line naming the flag, never a Python
keyword argument."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxplain
from onnxplain.cli._errors import FLAGS, PHRASES, cli_message
from tests.cli.conftest import _save

KEYWORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*=")


def dynamic_hw_model(path: Path) -> Path:
    """(N, 1, H, W) → global average → 3 logits: H and W are left dynamic by the graph."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "W"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "dynamic_hw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(np.array([[1.0, -1.0, 0.5]], np.float32), "W")],
    )
    return _save(graph, path)


EXPLAIN = ["explain", "{d}/linear.onnx", "{d}/c.npy", "-m", "geex", "-n", "8"]
COMPARE = ["compare", "--onnx", "demo", "--torch", "demo", "{d}/digit.npy", "--blackbox", "geex", "--whitebox", "ig",
           "-n", "8", "--steps", "4"]
CASES = [
    ("missing model", ["explain", "{d}/missing.onnx", "{d}/c.npy", "-m", "geex"], "does not exist"),
    ("not an onnx model", ["explain", "{d}/notes.txt", "{d}/c.npy", "-m", "geex"], "not an ONNX model"),
    ("unreadable image", ["explain", "{d}/linear.onnx", "{d}/fake.png", "-m", "geex"], "not an image"),
    ("dynamic H and W", ["explain", "{d}/dyn.onnx", "{d}/c.npy", "-m", "geex"], "pass --input-shape C,H,W."),
    ("target out of range", [*EXPLAIN, "--target", "3"], "target 3 is out of range"),
    ("GEEX budget too small", [*EXPLAIN[:-1], "1"], "--queries must be an integer ≥ 2, got 1."),
    ("LIME budget too small", ["explain", "{d}/linear.onnx", "{d}/c.npy", "-m", "lime", "-n", "1"], "--queries must"),
    ("IG steps too small", [*COMPARE[:-1], "1"], "--steps must be an integer ≥ 2, got 1."),
    ("zero batch size", [*EXPLAIN, "--batch-size", "0"], "--batch-size"),
    ("bad device", [*EXPLAIN, "--device", "tpu"], "--device must be"),
    ("bad baseline", [*EXPLAIN, "--baseline", "purple"], "--baseline must be 'zero', 'blur'"),
    ("missing baseline file", [*EXPLAIN, "--baseline", "{d}/nope.npy"], "baseline file"),
    ("baseline of the wrong shape", [*EXPLAIN, "--baseline", "{d}/wrong.npy"], "baseline has shape (2, 8, 8)"),
    ("unknown metric", [*COMPARE, "--metrics", "vibes"], "unknown metric 'vibes'"),
    ("negative workers", [*EXPLAIN, "--backend", "ray", "--workers", "-1"], "--workers must be"),
    ("tensor name for a file", [*EXPLAIN, "--input-name", "x"], "--input-name applies to a KServe-v2 URL"),
    ("bad labels", [*EXPLAIN, "--labels", "{d}/labels2.txt"], "2 names"),
]


@pytest.mark.parametrize("argv,phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_speaks_cli(workdir, run_cli, argv, phrase):
    dynamic_hw_model(workdir / "dyn.onnx")
    from onnxplain.demo import load_demo_digits

    np.save(workdir / "digit.npy", load_demo_digits()[0][0])
    out = workdir / "out"
    code, _, err = run_cli(*(a.format(d=workdir) for a in argv), "--out", out)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert phrase in lines[0]
    assert not KEYWORD.search(lines[0]), lines[0]
    assert "Traceback" not in err and not out.exists()


def test_the_flag_named_fixes_it(workdir, run_cli):
    """--input-shape, as the message says, makes the dynamic model usable."""
    dynamic_hw_model(workdir / "dyn.onnx")
    code, _, err = run_cli("explain", workdir / "dyn.onnx", workdir / "c.npy", "-m", "geex", "-n", "8",
                           "--input-shape", "1,8,8", "--out", workdir / "o")
    assert code == 0, err


def _text(node: ast.AST) -> str:
    """A message's text; an f-string's fields become ``{}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join("{}" if isinstance(v, ast.FormattedValue) else _text(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    return ""


def _raised_messages() -> list[tuple[str, str]]:
    """(where, text) of the string arguments of every ``raise SomeError(...)`` of the package."""
    found = []
    for path in sorted(Path(onnxplain.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                found.extend((f"{path.name}:{node.lineno}", _text(arg)) for arg in node.exc.args)
    return found


def _instances(text: str) -> list[str]:
    """The message as it can read: a field glued to ``_name=`` is a tensor kind (remote.py's
    ``{kind}_name=``: "input" or "output")."""
    if "{}_name=" not in text:
        return [text]
    return [text.replace("{}_name=", f"{kind}_name=") for kind in ("input", "output")]


def test_every_keyword_in_an_error_message_has_a_cli_translation():
    """Scan the package: each ``name=`` a message contains is a flag of FLAGS or a phrase of PHRASES,
    and the translated message holds no ``name=`` any more."""
    checked = 0
    for where, raw in _raised_messages():
        for text in _instances(raw):
            for name in re.findall(r"\b([a-z_][a-z0-9_]*)=", text):
                assert name in FLAGS or any(re.search(p, text) for p, _ in PHRASES), (where, name, text)
                assert not KEYWORD.search(cli_message(text)), (where, cli_message(text))
                checked += 1
    assert checked >= 10  # the scan sees the package's messages (input_shape=, resume=, …)


def test_every_method_budget_has_a_flag():
    from onnxplain.registry import METHODS, get_method, is_blackbox

    for name in METHODS:
        param = get_method(name).budget_param
        if param is not None:
            assert FLAGS[param] == ("--queries" if is_blackbox(name) else "--steps"), name


def test_cli_and_pipeline_never_inspect_signatures():
    root = Path(onnxplain.__file__).parent
    for folder in ("cli", "pipeline"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            assert "import inspect" not in text and "signature(" not in text, path


def test_an_option_a_method_ignores_is_said(workdir, run_cli):
    """--baseline reaches GEEX (recorded in its params) and LIME, which takes none, is named on stderr."""
    import json

    out = workdir / "o"
    code, _, err = run_cli("explain", workdir / "linear.onnx", workdir / "c.npy", "-m", "geex,lime", "-n", "8",
                           "--baseline", "0.25", "--out", out)
    assert code == 0
    assert err.strip() == "onnxplain: note: lime take(s) no --baseline; it applies to the other methods."
    params = {r["method"]: r["params"] for r in json.loads((out / "results.json").read_text())["results"]}
    assert params["geex"]["baseline"] == 0.25 and "baseline" not in params["lime"]
