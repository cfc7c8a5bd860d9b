"""The prompt state (keys and values of every layer) of recent prompts, reused for the leading tokens the next
prompt shares with one of them, as llama.cpp's `cache_prompt` and vLLM's prefix caching do.

Editors send consecutive requests that differ only near the cursor, so the next prompt usually shares most of its
tokens with the previous one. Its prefill then runs only over the tokens after the shared ones. The store holds at
most `budget_tokens` tokens of state, dropping the least recently used prompts first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

from ....token_sequences import shared_length

# The keys and values of one prompt: one (keys, values) pair per layer, each shaped (1, kv_heads, tokens, head_dim).
KeyValues = list[tuple[torch.Tensor, torch.Tensor]]


class PrefixCache:
    """Prompt states keyed by their token ids, bounded to `budget_tokens` tokens in all (0 disables it).

    Not thread-safe: the engine's scheduler thread alone uses it.
    """

    def __init__(self, budget_tokens: int) -> None:
        self.budget_tokens = budget_tokens
        self._entries: OrderedDict[tuple[int, ...], KeyValues] = OrderedDict()
        self._tokens = 0

    @property
    def tokens(self) -> int:
        """The number of prompt tokens whose state is stored now."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, prompt: Sequence[int]) -> tuple[int, KeyValues | None]:
        """The longest stored state of `prompt`'s leading tokens, as (length, state cut to that length).

        At most `len(prompt) - 1` tokens are reused, so the prefill still computes the logits of the last one.
        Returns (0, None) when nothing is shared.
        """
        best_key, best = None, 0
        limit = len(prompt) - 1
        for key in self._entries:
            length = min(shared_length(key, prompt), limit)
            if length > best:
                best_key, best = key, length
        if best_key is None:
            return 0, None
        self._entries.move_to_end(best_key)
        state = [(keys[:, :, :best], values[:, :, :best]) for keys, values in self._entries[best_key]]
        return best, state

    def store(self, prompt: Sequence[int], state: KeyValues) -> None:
        """Keep `state`, the keys and values of all of `prompt`, evicting the least recently used to fit."""
        key = tuple(prompt)
        if not key or len(key) > self.budget_tokens:
            return
        for old in self._entries:
            if len(old) >= len(key) and old[: len(key)] == key:  # already covered by a longer stored prompt
                self._entries.move_to_end(old)
                return
        # A stored prompt that is a prefix of this one is covered by it: drop it rather than hold its state twice.
        for old in [old for old in self._entries if len(old) <= len(key) and key[: len(old)] == old]:
            self._tokens -= len(old)
            del self._entries[old]
        self._entries[key] = state
        self._tokens += len(key)
        while self._tokens > self.budget_tokens:
            old, _ = self._entries.popitem(last=False)
            self._tokens -= len(old)

    def clear(self) -> None:
        """Forget every stored state."""
        self._entries.clear()
        self._tokens = 0


__all__ = ["KeyValues", "PrefixCache"]
