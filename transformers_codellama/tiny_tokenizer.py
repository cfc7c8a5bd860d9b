"""The package's own small SentencePiece model, shaped like Code Llama's (for the demo and fast tests).

Code Llama's tokenizer is a SentencePiece BPE model with byte fallback, identity normalization, a dummy
prefix, and the infilling pieces `▁<PRE>`, `▁<SUF>`, `▁<MID>`, `▁<EOT>` appended after the Llama 2 vocabulary.
`tiny_codellama.model` has the same structure with a 1000-piece vocabulary trained on Python's standard
library, so it can ship with the package (Meta's model cannot) and every code path can run without downloads.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

from sentencepiece import SentencePieceTrainer

from .infilling import SENTINEL
from .sentencepiece_backend import ModelProto
from .stdlib_corpus import iter_stdlib_sources

TINY_MODEL_PATH = Path(__file__).parent / "data" / "tiny_codellama.model"


# The pieces Code Llama appends to the Llama 2 vocabulary (ids 32000-32015), in Meta's order.
CODE_LLAMA_EXTRA_PIECES = (
    "▁<SU", "▁<SUF", "▁<PRE", "▁<M", "▁<MID", "▁<E", "▁<EOT",
    "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>",
    *("▁" + "<EOT>" * n for n in range(2, 7)),
)  # fmt: skip


def append_pieces(model: bytes, pieces: Sequence[str], *, user_defined: bool = False) -> bytes:
    """Return `model` (a serialized SentencePiece model) with `pieces` appended, scored below every piece."""
    proto = ModelProto()
    proto.ParseFromString(model)
    known = {p.piece for p in proto.pieces}
    lowest = min(p.score for p in proto.pieces)
    for offset, piece in enumerate(pieces, start=1):
        if piece in known:
            raise ValueError(f"piece {piece!r} is already in the SentencePiece model")
        new = proto.pieces.add()
        new.piece, new.score = piece, lowest - offset
        new.type = proto.SentencePiece.USER_DEFINED if user_defined else proto.SentencePiece.NORMAL
    return proto.SerializeToString()


def train_tiny_model(corpus: Iterable[str], *, vocab_size: int = 1000) -> bytes:
    """Train a Code-Llama-shaped SentencePiece BPE model on `corpus` and return it serialized."""
    buffer = io.BytesIO()
    SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=vocab_size - len(CODE_LLAMA_EXTRA_PIECES) - 1,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        max_sentence_length=1 << 16,
        minloglevel=2,
    )
    # Meta encodes SENTINEL + text and drops its tokens to encode without the dummy prefix; Llama's vocabulary has it
    # as one piece, so the tiny model gets it too (it would otherwise fall back to three byte pieces).
    return append_pieces(buffer.getvalue(), (SENTINEL, *CODE_LLAMA_EXTRA_PIECES))


def _stdlib_lines(limit_chars: int) -> list[str]:
    """The non-empty lines of the top-level standard-library modules, whole files, until `limit_chars` is reached."""
    lines: list[str] = []
    size = 0
    for text in iter_stdlib_sources(recursive=False):
        for line in text.splitlines():
            if line.strip():
                lines.append(line)
                size += len(line)
        if size >= limit_chars:
            break
    return lines


def main() -> None:
    """Rebuild the shipped model (`python -m transformers_codellama.tiny_tokenizer`)."""
    TINY_MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    TINY_MODEL_PATH.write_bytes(train_tiny_model(_stdlib_lines(2_000_000)))
    print(f"wrote {TINY_MODEL_PATH}")


if __name__ == "__main__":
    main()
