"""A real MLServer on 127.0.0.1 serving ONNX files through onnxplain.serving.mlserver_runtime.

Which MLServer: ``$ONNXPLAIN_MLSERVER`` (the ``mlserver`` executable, e.g. of a separate venv:
MLServer 1.7 pins protobuf < 7), else ``mlserver`` beside this Python or on PATH. Absent, or
unable to start (it never answers ``/v2/health/live``), the tests skip with the reason. A server
that starts but cannot load onnxplain's runtime fails the tests: that is this project's fault.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import onnxplain

README = Path(__file__).resolve().parents[2] / "README.md"
START_TIMEOUT = 60.0


def readme_recipe() -> dict[str, Any]:
    """The README's MLServer block: its commands, the model folder and the model-settings JSON."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- mlserver-recipe -->\s*```bash\n(.*?)```", text, re.S)
    assert match, "README.md has no <!-- mlserver-recipe --> bash block"
    block = match.group(1)
    heredoc = re.search(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF\n", block, re.S)
    assert heredoc, "the MLServer block writes no model-settings.json"
    start = re.search(r"^mlserver start (\S+)", block, re.M)
    assert start, "the MLServer block has no 'mlserver start' line"
    return {
        "block": block,
        "settings_path": heredoc.group(1),
        "settings": json.loads(heredoc.group(2)),
        "repository": start.group(1),
        "lines": [line for line in block.splitlines() if line.strip()],
    }


def mlserver_executable() -> str:
    """The ``mlserver`` to run, or skip saying how to provide one."""
    configured = os.environ.get("ONNXPLAIN_MLSERVER")
    if configured:
        if not Path(configured).is_file():
            pytest.skip(f"ONNXPLAIN_MLSERVER={configured} does not exist")
        return configured
    beside = Path(sys.executable).with_name("mlserver")
    found = str(beside) if beside.is_file() else shutil.which("mlserver")
    if found is None:
        pytest.skip(
            "MLServer is not installed: set ONNXPLAIN_MLSERVER to an mlserver executable "
            "(.ci/run installs one in .venv-mlserver)"
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class MLServerProcess:
    """``mlserver start REPOSITORY`` on free ports (HTTP, gRPC; metrics off, inference in-process).

    The model folders and their ``model-settings.json`` are written by the caller; the server's own
    settings come from environment variables so the README's files are used unchanged.
    """

    def __init__(self, repository: Path, models: list[str]) -> None:
        self.repository, self.models = repository, models
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = repository.parent / f"mlserver-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MLServerProcess:
        src = str(Path(onnxplain.__file__).resolve().parents[1])  # this checkout's onnxplain
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PYTHONUNBUFFERED": "1",
            "MLSERVER_HOST": "127.0.0.1",
            "MLSERVER_HTTP_PORT": str(self.port),
            "MLSERVER_GRPC_PORT": str(free_port()),
            "MLSERVER_METRICS_ENDPOINT": "",
            "MLSERVER_PARALLEL_WORKERS": "0",
        }
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [mlserver_executable(), "start", str(self.repository)],
                cwd=self.repository.parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()
        return self

    def log(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        live = False
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.skip(f"MLServer exited with code {self.proc.returncode} before serving:\n{self.log()}")
            live = live or _get(self.url + "/v2/health/live") == 200
            if live and all(_get(f"{self.url}/v2/models/{m}/ready") == 200 for m in self.models):
                return
            time.sleep(0.1)
        self.stop()
        if not live:
            pytest.skip(f"MLServer did not start within {START_TIMEOUT:g} s:\n{self.log()}")
        pytest.fail(f"MLServer started but did not load {self.models} within {START_TIMEOUT:g} s:\n{self.log()}")

    def infer_requests(self, model: str, settle: float = 0.3) -> int:
        """Answered ``infer`` requests of ``model``, from the server's access log (read once the log
        has not grown for ``settle`` seconds, so a line still being written is not missed)."""
        pattern = f'"POST /v2/models/{model}/infer HTTP/1.1" 200'
        size, deadline = -1, time.monotonic() + 5
        while time.monotonic() < deadline:
            current = self.log_path.stat().st_size
            if current == size:
                break
            size = current
            time.sleep(settle)
        return self.log_path.read_text(errors="replace").count(pattern)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> MLServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_model(repository: Path, settings: dict[str, Any], onnx_file: Path) -> None:
    """A model folder: the ONNX file as ``model.onnx`` beside ``settings`` as model-settings.json."""
    folder = repository / settings["name"]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_file, folder / "model.onnx")
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=1))
