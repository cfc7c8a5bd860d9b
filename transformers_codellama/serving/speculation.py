"""Prompt-lookup speculative decoding: draft the next tokens of a sequence from its own earlier text.

Editors' completions often repeat what the prompt holds already (a name from the prefix, the line the suffix starts
with, the rest of a pattern). When a sequence's last `ngram` tokens occurred earlier in its prompt or output, the
tokens that followed them there are a cheap guess at what follows now (Saxena's prompt lookup decoding; transformers'
`prompt_lookup_num_tokens`). The engine feeds each row's next token and its draft in one batched forward, keeps the
longest run the model agrees with (`TokenChooser.verify`) and masks out the rest (`DecodeBatch.accept`), so a step
may give a row several tokens for about the cost of one.

The index maps every n-gram to where it last ended, and grows by one entry per token: finding a draft is one
dictionary look-up, whatever the sequence's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PromptLookup:
    """How the engine drafts tokens.

    Attributes:
        draft_tokens: at most this many tokens are proposed per sequence and step (k).
        ngram: the number of trailing tokens matched against the sequence's earlier tokens (n).
    """

    draft_tokens: int = 4
    ngram: int = 3

    def check(self) -> None:
        """Raise a one-line `ValueError` naming the field out of range."""
        for name, value in (("draft_tokens", self.draft_tokens), ("ngram", self.ngram)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


class NgramIndex:
    """One sequence's tokens (prompt, then output) and, for each n-gram, the end of its latest occurrence that has a
    token after it."""

    def __init__(self, tokens: Sequence[int], ngram: int) -> None:
        self.ngram = ngram
        self.tokens = list(tokens)
        self._ends: dict[tuple[int, ...], int] = {}
        for end in range(ngram, len(self.tokens)):
            self._ends[tuple(self.tokens[end - ngram : end])] = end

    def extend(self, tokens: Iterable[int]) -> None:
        """Append `tokens` (the ones just generated)."""
        n = self.ngram
        for token in tokens:
            self.tokens.append(token)
            end = len(self.tokens) - 1
            if end >= n:
                self._ends[tuple(self.tokens[end - n : end])] = end

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` tokens that followed the latest earlier occurrence of the last `ngram` tokens; [] if none."""
        if limit < 1 or len(self.tokens) <= self.ngram:
            return []
        end = self._ends.get(tuple(self.tokens[-self.ngram :]))
        return [] if end is None else self.tokens[end : end + limit]


__all__ = ["NgramIndex", "PromptLookup"]
