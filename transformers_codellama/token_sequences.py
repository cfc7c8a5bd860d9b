"""Small facts about token id sequences that more than one part of the package needs."""

from __future__ import annotations

from collections.abc import Sequence


def shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` have in common."""
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


__all__ = ["shared_length"]
