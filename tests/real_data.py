"""What the tests check against: Meta's real SentencePiece models (beside the clone, never in it) and real code.

Imported by module name (`from real_data import ...`), like the other test helpers in this folder.
"""

from __future__ import annotations

import random
from pathlib import Path

from transformers_codellama import TINY_MODEL_PATH
from transformers_codellama.stdlib_corpus import stdlib_sources as _stdlib_sources

REPO = Path(__file__).resolve().parent.parent
# Meta's SentencePiece models live in ../shared/data beside the clone (CI provides it).
SHARED_DATA = REPO.parent / "shared" / "data"
CODELLAMA_MODEL = SHARED_DATA / "codellama.model"  # 32016 pieces, with infilling
LLAMA2_MODEL = SHARED_DATA / "llama2.model"  # 32000 pieces, no infilling (34B, Python)
MODELS = {"codellama": CODELLAMA_MODEL, "llama2": LLAMA2_MODEL, "tiny": TINY_MODEL_PATH}


def stdlib_sources(limit: int = 400) -> list[str]:
    """The first `limit` Python standard-library modules (sorted, so every run sees the same files)."""
    return _stdlib_sources(max_files=limit)


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
