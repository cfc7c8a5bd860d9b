"""Pieces matched whole in text: SentencePiece's user-defined pieces, and tokens added with `add_tokens`.

SentencePiece finds user-defined pieces (70B-Instruct's `<step>`, for one) in the normalized text, leftmost and
longest first, and runs BPE on the spans between them; no merge crosses such a piece. The dummy prefix belongs to
the start of the whole text, so a text that starts with a user-defined piece gets a lone `▁` before it, and the spans
after a piece get none. Both tokenizer classes match tokens added with `add_tokens` the same way, so an added token
behaves exactly as if it were a user-defined piece of the model (`tokenizers` alone would match it only after a
space, because its dummy-prefix normalizer also prefixes the token's own text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from .infilling import SENTINEL


def whole_piece_pattern(pieces: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern finding `pieces` leftmost-longest-first (as SentencePiece's prefix matcher does); None for none."""
    ordered = sorted({piece for piece in pieces if piece}, key=lambda piece: (-len(piece), piece))
    return re.compile("(" + "|".join(map(re.escape, ordered)) + ")") if ordered else None


def encode_with_whole_pieces(
    texts: Sequence[str],
    pattern: re.Pattern[str],
    encode: Callable[[list[str]], list[list[int]]],
    piece_id: Callable[[str], int],
    *,
    dummy_id: int,
    sentinel_length: int,
) -> list[list[int]]:
    """SentencePiece's ids of each text, with the pieces `pattern` finds kept whole.

    `encode` is SentencePiece's plain encode of a batch (dummy prefix, no BOS/EOS); the spans after a whole piece are
    encoded behind Meta's sentinel (`SENTINEL`, `sentinel_length` tokens, then dropped) so they get no dummy prefix.
    All spans of all texts go to `encode` in one call.
    """
    requests: list[str] = []
    plans: list[list[int | tuple[int, bool]]] = []  # per text: piece ids, and (request index, behind the sentinel)
    for text in texts:
        parts = pattern.split(text)
        if len(parts) == 1:
            plans.append([(len(requests), False)])
            requests.append(text)
            continue
        plan: list[int | tuple[int, bool]] = []
        if parts[0]:
            plan.append((len(requests), False))
            requests.append(parts[0])
        else:  # the text starts with a whole piece: the dummy prefix stands alone
            plan.append(dummy_id)
        for position in range(1, len(parts), 2):
            plan.append(piece_id(parts[position]))
            if parts[position + 1]:
                plan.append((len(requests), True))
                requests.append(SENTINEL + parts[position + 1])
        plans.append(plan)
    encoded = encode(requests) if requests else []
    results = []
    for plan in plans:
        ids: list[int] = []
        for step in plan:
            if isinstance(step, int):
                ids.append(step)
            else:
                index, behind_sentinel = step
                ids.extend(encoded[index][sentinel_length:] if behind_sentinel else encoded[index])
        results.append(ids)
    return results


__all__ = ["encode_with_whole_pieces", "whole_piece_pattern"]
