"""The README's main job, `codellama-demo`, run as a user runs it (a subprocess, no download, no network)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from transformers_codellama.demo import INFILL_PROMPT


def _demo(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "transformers_codellama.demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def _layout_in_order(out: str, markers: tuple[str, ...]) -> None:
    layout = next(line for line in out.splitlines() if line.startswith("prompt layout:"))
    order = [layout.index(marker) for marker in markers]
    assert order == sorted(order)


def test_demo_runs_the_trained_model_through_meta_layout_converter_and_pipeline():
    done = _demo("--max-new-tokens", "24")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "tiny trained Code Llama" in out and "RANDOM" not in out
    assert "Loaded CodeLlamaTokenizerFast and CodeLlamaForCausalLM (base variant)" in out
    _layout_in_order(out, ("BOS(1)", "▁<PRE>(", "def __len__(self)", "▁<SUF>(", "return iter(self._items)", "▁<MID>("))
    middle_line = next(line for line in out.splitlines() if line.startswith("middle (stops at ▁<EOT>): "))
    middle = ast.literal_eval(middle_line.removeprefix("middle (stops at ▁<EOT>): "))
    assert middle.strip(), "the trained model filled in nothing"
    filled = out.split("filled in:\n", 1)[1]
    assert filled.startswith(INFILL_PROMPT.replace("<FILL_ME>", middle))
    for step in ("write tiny Meta checkpoint", "convert", "completion", "infilling"):
        assert f"| {step}" in out
    assert "== chat: skipped" in out


def test_demo_random_weights_shows_the_chat_path():
    done = _demo("--random-weights", "--max-new-tokens", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "RANDOM weights" in out
    assert "Loaded CodeLlamaTokenizerFast and CodeLlamaForCausalLM (instruct variant)" in out
    _layout_in_order(out, ("BOS(1)", "▁<PRE>(", "def __len__(self)", "▁<SUF>(", "return iter(self._items)", "▁<MID>("))
    for step in ("write tiny Meta checkpoint", "convert", "completion", "infilling", "chat"):
        assert f"| {step}" in out
    assert "== chat\nassistant:" in out


def test_demo_help_explains_real_weights():
    done = _demo("--help")
    assert done.returncode == 0
    assert "codellama-convert --input-dir" in done.stdout and "--checkpoint" in done.stdout
