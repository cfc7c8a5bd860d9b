"""`whole_pieces` on its own: SentencePiece's plain encode plus the whole-piece splitter equals SentencePiece with those
pieces as user-defined pieces of the model."""

from __future__ import annotations

import pytest
import sentencepiece as spm
from real_data import CODELLAMA_MODEL, code_cuts

from transformers_codellama.infilling import SENTINEL
from transformers_codellama.tiny_tokenizer import append_pieces
from transformers_codellama.whole_pieces import encode_with_whole_pieces, whole_piece_pattern

PIECES = ["<step>", "<st>", "<|x|>"]  # "<st>" is not a prefix match of "<step>"; "<|x|>" needs escaping


@pytest.fixture(scope="module")
def oracle() -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(
        model_proto=append_pieces(CODELLAMA_MODEL.read_bytes(), PIECES, user_defined=True)
    )


def _encode(sp: spm.SentencePieceProcessor, oracle: spm.SentencePieceProcessor, texts: list[str]) -> list[list[int]]:
    pattern = whole_piece_pattern(PIECES)
    assert pattern is not None
    return encode_with_whole_pieces(
        texts,
        pattern,
        sp.encode,
        oracle.piece_to_id,
        dummy_id=sp.piece_to_id("▁"),
        sentinel_length=len(sp.encode(SENTINEL)),
    )


def test_corner_cases(sp, oracle):
    texts = ["<step>", " <step>", "a<step>b", "<st><step>", "<step><step>", "x  <|x|>\n y", "<ste", "<step>\n", "ab"]
    assert _encode(sp["codellama"], oracle, texts) == [oracle.encode(text) for text in texts]


def test_real_code_with_pieces_inserted(sp, oracle):
    texts = []
    for index, (prefix, suffix) in enumerate(code_cuts(40, seed=7, max_len=300)):
        piece = PIECES[index % len(PIECES)]
        texts.append(piece + prefix + piece + " " + suffix + piece)
    assert _encode(sp["codellama"], oracle, texts) == [oracle.encode(text) for text in texts]


def test_pattern_prefers_the_longest_piece():
    pattern = whole_piece_pattern(["<a>", "<a><b>", ""])
    assert pattern is not None
    assert pattern.split("x<a><b>y<a>") == ["x", "<a><b>", "y", "<a>", ""]
    assert whole_piece_pattern([]) is None
    assert whole_piece_pattern([""]) is None
