"""`codellama-serve` in a subprocess: it listens on 127.0.0.1 only, announces itself, requires its key, logs requests."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest
from tiny_checkpoints import make_checkpoint

from transformers_codellama.serving.cli import API_KEY_ENV, build_parser, main
from transformers_codellama.serving.defaults import DEFAULT_MAX_TOKENS_CAP


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _lines(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line)


def _wait_for(lines: queue.Queue, needle: str, seen: list[str], seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} never appeared in the server's output:\n{''.join(seen)}")


def test_cli_serves_on_localhost_only_with_its_key(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "CodeLlama-tiny")
    port = _free_port()
    command = [sys.executable, "-m", "transformers_codellama.serving.cli", str(checkpoint), "--port", str(port)]
    env = {**os.environ, API_KEY_ENV: "cli-key", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stderr, lines), daemon=True).start()
    seen: list[str] = []
    try:
        startup = _wait_for(lines, f"at http://127.0.0.1:{port}", seen)
        assert str(checkpoint) in startup and "float32" in startup and "cpu" in startup
        listening = [
            conn.laddr
            for conn in psutil.Process(process.pid).net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        ]
        assert [(address.ip, address.port) for address in listening] == [("127.0.0.1", port)]
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/health").status_code == 200
        assert httpx.get(url + "/v1/models").status_code == 401
        body = {"model": str(checkpoint), "prompt": "def f(", "max_tokens": 3, "temperature": 0}
        response = httpx.post(url + "/v1/completions", json=body, headers={"Authorization": "Bearer cli-key"})
        assert response.status_code == 200, response.text
        log = _wait_for(lines, '"POST /v1/completions" 200', seen)
        usage = response.json()["usage"]
        assert (
            f"prompt_tokens={usage['prompt_tokens']}" in log
            and f"completion_tokens={usage['completion_tokens']}" in log
        )
        assert "time=" in log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGINT), "".join(seen)
    _wait_for(lines, "Finished server process", seen, seconds=10)


def test_cli_refuses_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nothing-here")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("codellama-serve: error: cannot load") and "Traceback" not in error
    assert main([str(tmp_path), "--max-tokens-cap", "0"]) == 2
    assert "--max-tokens-cap must be positive" in capsys.readouterr().err


def test_max_tokens_cap(tmp_path, capsys):
    assert build_parser().parse_args(["m", "--max-tokens-cap", "64"]).max_tokens_cap == 64
    assert build_parser().parse_args(["m"]).max_tokens_cap == DEFAULT_MAX_TOKENS_CAP
    assert main([str(tmp_path), "--max-tokens-cap", "0"]) == 2
    assert "--max-tokens-cap must be positive; got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # no abbreviations: `--max-tokens` is no other flag's prefix
        build_parser().parse_args(["m", "--max-tokens", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --max-tokens" in capsys.readouterr().err


def test_the_names_llamacpp_vllm_and_ollama_users_type(tmp_path, capsys):
    """`-m/--model` for the model, and each option's spellings from llama.cpp's and vLLM's servers."""
    parse = build_parser().parse_args
    assert parse(["-m", "path/to/model"]).model_option == "path/to/model"
    assert parse(["--model", "path/to/model"]).model_name is None  # no longer an abbreviation of --model-name
    for flag in ("--model-name", "--served-model-name", "--alias"):
        assert parse([flag, "codellama:7b-code"]).model_name == "codellama:7b-code"
    for flag in ("--max-batch-size", "--parallel", "-np", "--max-num-seqs"):
        assert parse([flag, "4"]).max_batch_size == 4
    assert parse(["-t", "3"]).threads == 3
    assert parse(["--allowed-origins", "https://a.example", "--cors-origin", "https://b.example"]).cors_origin == [
        "https://a.example",
        "https://b.example",
    ]
    assert main([str(tmp_path / "one"), "--model", str(tmp_path / "two")]) == 2
    assert "two models given" in capsys.readouterr().err
    assert main(["--allowed-origins", '{"a": 1}']) == 2
    assert "is not a JSON list of origins" in capsys.readouterr().err


def test_help_names_every_protocol_and_default(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    for protocol in ("/v1/completions", "/v1/fim/completions", "/infill", "/generate", "/api/generate"):
        assert protocol in shown
    for default in ("(default: 2048)", "(default: 16384)", f"(default: {4 * 1024 * 1024})", "(default: info)"):
        assert default in shown
