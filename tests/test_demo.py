"""The README's main job, `codellama-demo`, run as a user runs it (a subprocess, no weights, no network)."""

from __future__ import annotations

import os
import subprocess
import sys


def _demo(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "transformers_codellama.demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_demo_runs_every_step_on_random_weights():
    done = _demo("--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "RANDOM weights" in out
    assert "Loaded CodeLlamaTokenizerFast and CodeLlamaForCausalLM (instruct variant)" in out
    layout = next(line for line in out.splitlines() if line.startswith("prompt layout:"))
    order = [
        layout.index(marker)
        for marker in ("BOS(1)", "▁<PRE>(", "'def remove_non_ascii", "▁<SUF>(", "return result", "▁<MID>(")
    ]
    assert order == sorted(order)
    for step in ("write tiny Meta checkpoint", "convert", "completion", "infilling", "chat"):
        assert f"| {step}" in out
    assert "== chat\nassistant:" in out


def test_demo_help_explains_real_weights():
    done = _demo("--help")
    assert done.returncode == 0
    assert "codellama-convert --input-dir" in done.stdout and "--checkpoint" in done.stdout
