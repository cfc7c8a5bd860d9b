"""Code Llama's fill-in-the-middle layout, written once for both tokenizers and the pipeline.

Meta's `llama/generation.py` builds an infilling prompt from a prefix and a suffix as

* prefix-suffix-middle (default): `[BOS, ▁<PRE>] + enc(prefix) + [▁<SUF>] + enc_nolead(suffix) + [▁<MID>]`
* suffix-prefix-middle:           `[BOS, ▁<PRE>, ▁<SUF>] + enc_nolead(suffix) + [▁<MID>] + enc(prefix)`

where `enc` is SentencePiece's encode and `enc_nolead` encodes without the implicit leading space ("dummy
prefix"): Meta encodes `"☺" + text` and drops the tokens of `"☺"` (`▁` and `☺`). The generated middle ends with
`▁<EOT>` and is decoded the same way round: `decode(ids("☺") + middle)` minus the leading `"☺"`, which keeps a
real leading space of the middle's first token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

FILL_TOKEN = "<FILL_ME>"
PREFIX_PIECE = "▁<PRE>"
SUFFIX_PIECE = "▁<SUF>"
MIDDLE_PIECE = "▁<MID>"
EOT_PIECE = "▁<EOT>"
# Meta's marker for "no dummy prefix": a one-piece character that never merges with what follows it.
SENTINEL = "☺"


@dataclass(frozen=True)
class InfillingIds:
    """The ids of the control pieces an infilling prompt is made of (looked up by piece name)."""

    bos: int
    prefix: int
    suffix: int
    middle: int
    eot: int


def split_fill_marker(text: str, fill_token: str = FILL_TOKEN) -> tuple[str, str] | None:
    """Split `text` at its fill marker into `(prefix, suffix)`; None when it has no marker.

    Raises:
        ValueError: `text` holds the marker more than once.
    """
    count = text.count(fill_token)
    if count == 0:
        return None
    if count > 1:
        raise ValueError(f"an infilling prompt takes exactly one {fill_token} marker; found {count}")
    prefix, suffix = text.split(fill_token)
    return prefix, suffix


def nolead_inputs(suffixes: Sequence[str]) -> list[str]:
    """The strings to encode so that dropping the sentinel's tokens gives `enc_nolead(suffix)`."""
    return [SENTINEL + suffix for suffix in suffixes]


def encode_nolead(encode: Callable[[list[str]], Sequence[Sequence[int]]], texts: Sequence[str]) -> list[list[int]]:
    """`enc_nolead(text)` of each text: `encode` (a batched plain encode, no BOS) of `"☺" + text` without the tokens
    of `"☺"`. One call of `encode`, which also encodes the sentinel alone to learn how many tokens to drop."""
    if not texts:
        return []
    sentinel, *encoded = encode([SENTINEL, *nolead_inputs(texts)])
    return [list(ids[len(sentinel) :]) for ids in encoded]


def nolead_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """`enc_nolead(text)` of each text with `tokenizer`'s plain encode (`add_special_tokens=False`)."""
    return encode_nolead(lambda batch: tokenizer(batch, add_special_tokens=False)["input_ids"], texts)


def layout_length(prefix_length: int, suffix_length: int, *, add_bos: bool = True) -> int:
    """The length of `layout(...)` for a prefix and a suffix of these many ids: the text plus BOS and the three
    markers (either order). `layout_length(0, 0)` is what an infilling prompt costs beyond its text."""
    return int(add_bos) + 3 + prefix_length + suffix_length


def cannot_infill(config: Any, tokenizer: Any) -> str | None:
    """Why a model with this `config` and `tokenizer` cannot fill in the middle (one clause), or None when it can.

    Code Llama 34B and the Python models were not trained for it (`config.supports_infilling=False`, default True for
    configs that do not say); a tokenizer without the four pieces cannot lay the prompt out.
    """
    if not getattr(config, "supports_infilling", True):
        return "config.supports_infilling=False: Code Llama 34B and Python models were not trained for it"
    if not getattr(tokenizer, "supports_infilling", False):
        pieces = "/".join((PREFIX_PIECE, SUFFIX_PIECE, MIDDLE_PIECE, EOT_PIECE))
        return f"its tokenizer has no {pieces} pieces"
    return None


def layout(
    prefix_ids: Sequence[int],
    suffix_ids: Sequence[int],
    ids: InfillingIds,
    *,
    suffix_first: bool,
    add_bos: bool,
) -> list[int]:
    """Assemble Meta's infilling prompt from `enc(prefix)` and `enc_nolead(suffix)`.

    `add_bos=False` drops only the leading BOS (what `add_special_tokens=False` means for infilling).
    """
    head = [ids.bos] if add_bos else []
    if suffix_first:
        return [*head, ids.prefix, ids.suffix, *suffix_ids, ids.middle, *prefix_ids]
    return [*head, ids.prefix, *prefix_ids, ids.suffix, *suffix_ids, ids.middle]


def control_mask(prefix_len: int, suffix_len: int, *, suffix_first: bool, add_bos: bool) -> list[int]:
    """The special-tokens mask of `layout(...)`: 1 on BOS and the three markers, 0 on text."""
    head = [1] if add_bos else []
    if suffix_first:
        return [*head, 1, 1, *[0] * suffix_len, 1, *[0] * prefix_len]
    return [*head, 1, *[0] * prefix_len, 1, *[0] * suffix_len, 1]


__all__ = [
    "EOT_PIECE",
    "FILL_TOKEN",
    "MIDDLE_PIECE",
    "PREFIX_PIECE",
    "SENTINEL",
    "SUFFIX_PIECE",
    "InfillingIds",
    "cannot_infill",
    "control_mask",
    "encode_nolead",
    "layout",
    "layout_length",
    "nolead_ids",
    "nolead_inputs",
    "split_fill_marker",
]
