"""`codellama-convert --context-length`: a model trained at another context declares it (config, tokenizer, card)."""

from __future__ import annotations

import subprocess
import sys

from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from transformers import AutoConfig, AutoTokenizer

import transformers_codellama  # noqa: F401  (registers the Auto classes)

MODULE = "transformers_codellama.conversion.convert_codellama_weights_to_hf"


def _convert(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", MODULE, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_custom_model_declares_the_context_it_was_trained_at(tmp_path):
    write_meta_checkpoint(tmp_path / "CodeLlama-tiny", TinyCodeLlama())
    done = _convert(
        "--input-dir", tmp_path / "CodeLlama-tiny", "--output-dir", tmp_path / "hf", "--context-length", 192
    )
    assert done.returncode == 0, done.stderr
    assert AutoConfig.from_pretrained(tmp_path / "hf").max_position_embeddings == 192
    assert AutoTokenizer.from_pretrained(tmp_path / "hf").model_max_length == 192
    assert "192-token context" in (tmp_path / "hf" / "README.md").read_text()


def test_context_length_must_be_positive(tmp_path):
    write_meta_checkpoint(tmp_path / "CodeLlama-tiny", TinyCodeLlama())
    done = _convert("--input-dir", tmp_path / "CodeLlama-tiny", "--output-dir", tmp_path / "hf", "--context-length", 0)
    assert done.returncode == 1 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "context length must be a positive number of tokens; found 0" in done.stderr
    assert not (tmp_path / "hf").exists()
