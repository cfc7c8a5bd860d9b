"""Shared fixtures: the real Code Llama / Llama 2 SentencePiece models (the oracle) and tokenizers built on them."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm
from meta_tokenizer import MetaTokenizer
from real_data import CODELLAMA_MODEL, LLAMA2_MODEL, MODELS

from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast
from transformers_codellama.tiny_tokenizer import append_pieces

if not (CODELLAMA_MODEL.is_file() and LLAMA2_MODEL.is_file()):  # fail loudly: these tests are the exactness oracle
    raise pytest.UsageError(f"the real tokenizer models are missing: expected {CODELLAMA_MODEL} and {LLAMA2_MODEL}")


@pytest.fixture(scope="session")
def step_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Code Llama's model with a `<step>` piece added, shaped like the 70B-Instruct tokenizer."""
    path = tmp_path_factory.mktemp("step") / "tokenizer.model"
    path.write_bytes(append_pieces(CODELLAMA_MODEL.read_bytes(), ["<step>"], user_defined=True))
    return path


@pytest.fixture(scope="session")
def sp() -> dict[str, spm.SentencePieceProcessor]:
    """SentencePiece itself on each model: the reference."""
    return {name: spm.SentencePieceProcessor(model_file=str(path)) for name, path in MODELS.items()}


@pytest.fixture(scope="session")
def slow() -> dict[str, CodeLlamaTokenizer]:
    return {name: CodeLlamaTokenizer(vocab_file=str(path)) for name, path in MODELS.items()}


@pytest.fixture(scope="session")
def fast() -> dict[str, CodeLlamaTokenizerFast]:
    return {name: CodeLlamaTokenizerFast(vocab_file=str(path)) for name, path in MODELS.items()}


@pytest.fixture(scope="session")
def meta(sp) -> MetaTokenizer:
    """Meta's tokenizer behaviour restated on SentencePiece with Code Llama's model (tests/meta_tokenizer.py)."""
    return MetaTokenizer(sp["codellama"])


@pytest.fixture(params=["slow", "fast"])
def tokenizer(request: pytest.FixtureRequest) -> CodeLlamaTokenizer | CodeLlamaTokenizerFast:
    """Each tokenizer class on Code Llama's model."""
    return request.getfixturevalue(request.param)["codellama"]
