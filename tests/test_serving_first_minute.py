"""A newcomer's first minute: `codellama-serve` with no MODEL serves the package's small trained model, and without
the serve extra the command says which extra to install in one line instead of a traceback."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

import httpx
from test_serving_cli import _free_port, _lines, _wait_for

from transformers_codellama.serving.default_model import DEFAULT_MODEL_NAME


def test_without_the_serve_extra_the_command_names_it(tmp_path):
    shadow = tmp_path / "fastapi"
    shadow.mkdir()  # an importable `fastapi` that is not there, as after `pip install .`
    (shadow / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'fastapi\'", name="fastapi")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "transformers_codellama.serving.cli", "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [
        'codellama-serve: error: fastapi is not installed: the server needs the serve extra, pip install ".[serve]" '
        "(from a clone of this repository)"
    ]


def test_with_no_model_it_serves_the_small_trained_model():
    port = _free_port()
    command = [sys.executable, "-m", "transformers_codellama.serving.cli", "--port", str(port)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True).start()
    seen: list[str] = []
    try:
        startup = _wait_for(lines, f"at http://127.0.0.1:{port}", seen)
        assert f"codellama-serve: {DEFAULT_MODEL_NAME} (" in startup and "the package's small trained model" in startup
        url = f"http://127.0.0.1:{port}"
        assert "<title>codellama-serve playground</title>" in httpx.get(url + "/").text
        body = {"input_prefix": "    def __len__(self):\n", "input_suffix": "\n", "n_predict": 16, "temperature": 0}
        assert httpx.post(url + "/infill", json=body, timeout=60).json()["content"].strip()
        models = httpx.get(url + "/v1/models").json()["data"]
        assert [model["id"] for model in models] == [DEFAULT_MODEL_NAME]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
