"""What a token is on the wire: its piece as text and as bytes, and its log-probability record's alternatives.

SentencePiece's pieces spell a space as `▁` and a byte the vocabulary has no piece for as `<0xNN>`; llama.cpp's
`token_to_piece`, OpenAI's log-probabilities and TGI's token details each show a token from those two rules
(`token_texts`). The log-probability records come from the distribution each token was sampled from, so an
alternative outside the top-k / top-p nucleus has -inf, which JSON cannot carry: the protocols leave it out
(`sampled_alternatives`, `chances`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from ...sentencepiece_backend import is_byte_piece
from ..engines.base import Tokenizer, out_of_vocabulary
from ..engines.sampling import TokenLogprob
from ..http.errors import ServingError

# float32's lowest value: what llama.cpp sends for log(0), which JSON cannot hold (-inf has no JSON spelling).
LOWEST_LOGPROB = -3.4028234663852886e38


class TokenText(NamedTuple):
    """One token as the protocols show it.

    Attributes:
        text: Its piece with `▁` as a space (a byte piece keeps its own spelling, `<0xE2>`; special tokens are their
            text, `</s>`).
        data: What it stands for: the text's UTF-8, or a byte piece's one byte.
        byte: Whether it is a byte piece (`<0x00>` to `<0xFF>`).
    """

    text: str
    data: bytes
    byte: bool


def token_texts(tokenizer: Tokenizer, token_ids: Sequence[int]) -> list[TokenText]:
    """The `TokenText` of each of `token_ids`."""
    shown = []
    for piece in tokenizer.convert_ids_to_tokens(list(token_ids)):
        token = str(piece)
        if is_byte_piece(token):
            shown.append(TokenText(token, bytes([int(token[3:5], 16)]), True))
        else:
            text = token.replace("\u2581", " ")
            shown.append(TokenText(text, text.encode(), False))
    return shown


def piece_bytes(tokenizer: Tokenizer, token_ids: Sequence[int]) -> list[bytes]:
    """The bytes each token stands for, as llama.cpp's `token_to_piece` writes them."""
    return [shown.data for shown in token_texts(tokenizer, token_ids)]


def check_vocabulary(tokenizer: Tokenizer, token_ids: Sequence[int], field: str) -> None:
    """A 400 naming `field` when one of `token_ids` (a request's) is outside the tokenizer's vocabulary."""
    vocabulary = len(tokenizer)
    bad = out_of_vocabulary(token_ids, vocabulary)
    if bad is not None:
        raise ServingError(
            400,
            f"{field} holds the token id {token_ids[bad]}, outside the vocabulary (0..{vocabulary - 1})",
            param=field,
        )


class Chance(NamedTuple):
    """One token of a log-probability record: its id, its bytes (`piece_bytes`) and its log-probability (never -inf:
    `LOWEST_LOGPROB` stands for it)."""

    id: int
    piece: bytes
    logprob: float


def sampled_alternatives(record: TokenLogprob) -> list[tuple[int, float]]:
    """`record.top` without the ids the distribution sampled from gave no chance (-inf: outside the top-k / top-p
    nucleus), which no client could read back (JSON has no -inf)."""
    return [(token, value) for token, value in record.top if value != -math.inf]


def chances(tokenizer: Tokenizer, record: TokenLogprob) -> tuple[Chance, list[Chance]]:
    """The chosen token of `record` and its alternatives, most likely first. Alternatives the distribution sampled
    from gave no chance (-inf: outside the top-k / top-p nucleus) are left out, so a request may get fewer than it
    asked for, as llama.cpp lists only the candidates its samplers kept."""
    kept = sampled_alternatives(record)
    pieces = piece_bytes(tokenizer, [record.token, *(token for token, _ in kept)])
    values = [record.logprob, *(value for _, value in kept)]
    ids = [record.token, *(token for token, _ in kept)]
    shown = [Chance(i, piece, max(value, LOWEST_LOGPROB)) for i, piece, value in zip(ids, pieces, values, strict=True)]
    return shown[0], shown[1:]


__all__ = [
    "LOWEST_LOGPROB",
    "Chance",
    "TokenText",
    "chances",
    "check_vocabulary",
    "piece_bytes",
    "sampled_alternatives",
    "token_texts",
]
