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

from collections.abc import Sequence
from dataclasses import dataclass

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
    "control_mask",
    "layout",
    "nolead_inputs",
    "split_fill_marker",
]
