"""Prompt-lookup speculative decoding: draft the next tokens of a sequence from its own earlier text.

Editors' completions often repeat what the prompt holds already (a name from the prefix, the line the suffix starts
with, the rest of a pattern). When a sequence's last `ngram` tokens occurred earlier in its prompt or output, the
tokens that followed them there are a cheap guess at what follows now (Saxena's prompt lookup decoding; transformers'
`prompt_lookup_num_tokens`). The engine feeds each row's next token and its draft in one batched forward, keeps the
longest run the model agrees with (`TokenChooser.verify`) and masks out the rest (`DecodeBatch.accept`), so a step
may give a row several tokens for about the cost of one.

The index maps every n-gram to where it last ended, and grows by one entry per token: finding a draft is one
dictionary look-up, whatever the sequence's length.

Verifying is not free: every row of a step is as long as its longest draft, and where the output layer dominates
(small models on a CPU) a step's time grows with the tokens it computes. So `DraftPlanner` picks each step's draft
length from a cost model fitted to the steps' measured times (a fixed cost per step plus a cost per token) and each
row's recent acceptance: the length that gives the most expected tokens per second, 0 when drafting would not pay.
Each row's acceptance, and the engine's over every row's recent drafts, is kept by `Acceptance`.
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
    ngram: int = 2

    def check(self) -> None:
        """Raise a one-line `ValueError` naming the field out of range."""
        for name, value in (("draft_tokens", self.draft_tokens), ("ngram", self.ngram)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


# What `codellama-serve` uses unless told otherwise (benchmarks/bench_serving.py measured it; docs/serving.md).
DEFAULT_LOOKUP = PromptLookup()


class Acceptance:
    """The chance that a draft token is kept, as the planner reads it: the engine's over every request's recent
    drafts, and each request's own (`request`), both running averages updated after every verified draft.

    A new request's estimate starts from the engine's (short requests end before their own would have learnt that
    drafts do not pay here), never below `FLOOR`, so that each request still tries a draft or two and a workload whose
    drafts do come true is found again.
    """

    START = 0.6  # the engine's estimate before any draft was verified
    FLOOR = 0.3  # the lowest a new request's estimate starts from
    REQUEST_WEIGHT = 0.3  # the weight of one verified draft in its request's estimate
    ENGINE_WEIGHT = 0.1  # ... and in the engine's

    def __init__(self) -> None:
        self.recent = self.START

    def start(self) -> float:
        """Where a new request's estimate starts."""
        return max(self.recent, self.FLOOR)

    def update(self, estimate: float, drafted: int, kept: int) -> float:
        """Record that `kept` of `drafted` tokens of one request's draft were kept; that request's new estimate
        (from its old `estimate`)."""
        share = kept / drafted
        self.recent += self.ENGINE_WEIGHT * (share - self.recent)
        return estimate + self.REQUEST_WEIGHT * (share - estimate)


class DraftPlanner:
    """Chooses how many draft tokens a step verifies, from the time steps took and how often drafts were right.

    Step time is modelled as `fixed + per_token * tokens` (tokens: rows x (1 + draft length)), fitted by
    exponentially weighted least squares over recent steps, starting from a prior in which the fixed cost is worth
    `PRIOR_TOKENS` tokens. A row whose draft tokens are each kept with probability `a` adds `a + a^2 + ...` expected
    tokens; the chosen length maximises (rows + expected extra tokens) / predicted time.
    """

    PRIOR_TOKENS = 8.0
    DECAY = 0.98
    MARGIN = 0.1

    def __init__(self) -> None:
        # Weighted sums of 1, x, x^2, y, xy over observed steps (x: tokens computed, y: seconds), with a prior.
        self._sums = [0.0] * 5
        self._observed = 0

    def observe(self, tokens: int, seconds: float) -> None:
        """Record one step: `tokens` positions computed in `seconds`."""
        x, y = float(tokens), seconds
        self._sums = [self.DECAY * total + value for total, value in zip(self._sums, (1.0, x, x * x, y, x * y))]
        self._observed += 1

    def costs(self) -> tuple[float, float]:
        """(fixed seconds per step, seconds per token) as fitted now (the prior's ratio until steps vary)."""
        n, sx, sxx, sy, sxy = self._sums
        if n == 0:
            return self.PRIOR_TOKENS, 1.0
        mean_x, mean_y = sx / n, sy / n
        variance, covariance = sxx / n - mean_x * mean_x, sxy / n - mean_x * mean_y
        # Shrunk towards the prior (a fixed cost of PRIOR_TOKENS tokens at the observed mean time) as if two more
        # steps had measured it with a spread of half the mean: a fit that steps of one size cannot make holds it.
        prior_slope = mean_y / (self.PRIOR_TOKENS + mean_x)
        weight = 2.0 * (mean_x / 2) ** 2
        slope = max((n * covariance + weight * prior_slope) / (n * variance + weight), 1e-12)
        return max(mean_y - slope * mean_x, 0.0), slope

    def length(self, drafts: Sequence[Sequence[int]], acceptance: Sequence[float], limit: int) -> int:
        """The draft length (0 to `limit`) for a step over rows with these `drafts` and per-token `acceptance`."""
        rows = len(drafts)
        fixed, per_token = self.costs()
        # A draft must promise MARGIN more tokens per second than a plain step: what the model leaves out (the
        # masked-out columns a rejected draft leaves behind, the noise in the fit) is all on the side of its cost.
        best, best_rate = 0, (1 + self.MARGIN) * rows / (fixed + per_token * rows)
        gains = [0.0] * rows
        for length in range(1, limit + 1):
            for row, (draft, rate) in enumerate(zip(drafts, acceptance)):
                if len(draft) >= length:
                    gains[row] += rate**length
            tokens_per_second = (rows + sum(gains)) / (fixed + per_token * rows * (1 + length))
            if tokens_per_second > best_rate:
                best, best_rate = length, tokens_per_second
        return best


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


__all__ = ["DEFAULT_LOOKUP", "Acceptance", "DraftPlanner", "NgramIndex", "PromptLookup"]
