"""Shared fixtures: the real Code Llama / Llama 2 SentencePiece models (the oracle) and tokenizers built on them."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import sentencepiece as spm

from transformers_codellama import TINY_MODEL_PATH, CodeLlamaTokenizer, CodeLlamaTokenizerFast
from transformers_codellama.tiny_tokenizer import append_pieces

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
CODELLAMA_MODEL = SHARED_DATA / "codellama.model"
LLAMA2_MODEL = SHARED_DATA / "llama2.model"

if not (CODELLAMA_MODEL.is_file() and LLAMA2_MODEL.is_file()):  # fail loudly: these tests are the exactness oracle
    raise pytest.UsageError(f"the real tokenizer models are missing: expected {CODELLAMA_MODEL} and {LLAMA2_MODEL}")


@pytest.fixture(scope="session")
def step_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Code Llama's model with a `<step>` piece added, shaped like the 70B-Instruct tokenizer."""
    path = tmp_path_factory.mktemp("step") / "tokenizer.model"
    path.write_bytes(append_pieces(CODELLAMA_MODEL.read_bytes(), ["<step>"], user_defined=True))
    return path


MODELS = {"codellama": CODELLAMA_MODEL, "llama2": LLAMA2_MODEL, "tiny": TINY_MODEL_PATH}


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


def stdlib_sources(limit: int = 400) -> list[str]:
    """Real code from this machine: Python standard library modules (sorted, so every run sees the same files)."""
    root = Path(os.__file__).parent
    paths = sorted(root.glob("*.py")) + sorted(root.glob("*/*.py"))
    texts = []
    for path in paths[:limit]:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, OSError):
            continue
    return texts


def code_cuts(count: int, seed: int = 0, max_len: int = 1500) -> list[tuple[str, str]]:
    """`count` (prefix, suffix) pairs cut from real code at random points (whitespace runs, mid-token, anywhere)."""
    rng = random.Random(seed)
    sources = [text for text in stdlib_sources() if len(text) > 50]
    cuts = []
    for _ in range(count):
        text = rng.choice(sources)
        start = rng.randrange(len(text))
        cut = rng.randrange(start, min(len(text), start + max_len) + 1)
        end = rng.randrange(cut, min(len(text), cut + max_len) + 1)
        cuts.append((text[start:cut], text[cut:end]))
    return cuts
