"""The running batch of the engine: one decoding step for every request in it, over the model's own forward.

Each request arrives with its prompt state from its own prefill. The batch keeps the rows' keys and values in one
`DynamicCache`, aligned on the right (shorter rows padded on the left and masked out), so one forward computes the
next logits of every row: each row at its own position (`position_ids`), attending only to its own tokens
(`attention_mask`). Rows join and leave between steps; leaving trims the padding no row needs any more.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import torch
from transformers import DynamicCache

from .prefix_cache import KeyValues

Row = TypeVar("Row")


def cache_from(state: KeyValues) -> DynamicCache:
    """A `DynamicCache` holding `state` (one (keys, values) pair per layer)."""
    cache = DynamicCache()
    for layer, (keys, values) in enumerate(state):
        cache.update(keys, values, layer)
    return cache


def state_of(cache: DynamicCache) -> KeyValues:
    """The (keys, values) pair of every layer of `cache`."""
    # `DynamicCache` holds one `DynamicLayer` (with `keys` and `values` tensors) per decoder layer.
    return [(layer.keys, layer.values) for layer in cache.layers]  # type: ignore[union-attr,misc]


def forward(model: Any, cache: DynamicCache, **inputs: Any) -> Any:
    """`model(**inputs)` extending `cache` in place; the model's output (its `logits`)."""
    # transformers renamed the forward's `past_key_values` argument to `cache` (5.2x); older releases know only the
    # first name, newer ones warn on it.
    return model(**inputs, **{_cache_keyword(model.forward): cache}, use_cache=True)


_CACHE_KEYWORDS: dict[Any, str] = {}


def _cache_keyword(forward: Any) -> str:
    function = getattr(forward, "__func__", forward)
    if function not in _CACHE_KEYWORDS:
        parameters = inspect.signature(function).parameters
        _CACHE_KEYWORDS[function] = "cache" if "cache" in parameters else "past_key_values"
    return _CACHE_KEYWORDS[function]


def _pad_left(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    """`tensor` (batch, heads, tokens, dim) with `columns` zero positions put before its tokens."""
    if columns == 0:
        return tensor
    shape = (*tensor.shape[:2], columns, tensor.shape[3])
    return torch.cat([tensor.new_zeros(shape), tensor], dim=2)


class DecodeBatch(Generic[Row]):
    """The requests decoding together: their rows of keys and values, positions, masks and next input tokens."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._reset()

    def _reset(self) -> None:
        self.rows: list[Row] = []
        self._cache = DynamicCache()
        self._mask = torch.zeros((0, 0), dtype=torch.long)
        self._lengths: list[int] = []
        self._next: list[int] = []

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def width(self) -> int:
        """Positions held per row (the longest row's tokens)."""
        return self._mask.shape[1]

    def join(self, row: Row, state: KeyValues, next_token: int) -> None:
        """Add `row`, whose prompt state (batch 1) is `state`, to decode `next_token` next."""
        length = state[0][0].shape[2]
        width = max(self.width, length)
        mask = torch.cat([torch.zeros(width - length, dtype=torch.long), torch.ones(length, dtype=torch.long)])
        if not self.rows:
            self._cache = cache_from(state)
            self._mask = mask.unsqueeze(0)
        else:
            grow = width - self.width
            self._cache = cache_from(
                [
                    (
                        torch.cat([_pad_left(keys, grow), _pad_left(new_keys, width - length)]),
                        torch.cat([_pad_left(values, grow), _pad_left(new_values, width - length)]),
                    )
                    for (keys, values), (new_keys, new_values) in zip(state_of(self._cache), state)
                ]
            )
            self._mask = torch.cat([torch.nn.functional.pad(self._mask, (grow, 0)), mask.unsqueeze(0)])
        self.rows.append(row)
        self._lengths.append(length)
        self._next.append(next_token)

    def keep(self, indices: Sequence[int]) -> None:
        """Keep only the rows at `indices` (in that order); drop the padding columns no kept row uses."""
        if len(indices) == len(self.rows):
            return
        if not indices:
            self._reset()
            return
        select = torch.tensor(list(indices))
        mask = self._mask.index_select(0, select)
        start = int((mask.sum(dim=0) == 0).long().cumprod(dim=0).sum())  # leading columns padding in every row
        self._mask = mask[:, start:]
        self._cache = cache_from(
            [
                (keys.index_select(0, select)[:, :, start:], values.index_select(0, select)[:, :, start:])
                for keys, values in state_of(self._cache)
            ]
        )
        self.rows = [self.rows[i] for i in indices]
        self._lengths = [self._lengths[i] for i in indices]
        self._next = [self._next[i] for i in indices]

    def step(self) -> torch.Tensor:
        """One forward over every row's next token; returns the next-token logits, shape (rows, vocab), float32."""
        device = self.model.device
        input_ids = torch.tensor(self._next, device=device).unsqueeze(1)
        position_ids = torch.tensor(self._lengths, device=device).unsqueeze(1)
        mask = torch.cat([self._mask, torch.ones((len(self.rows), 1), dtype=torch.long)], dim=1)
        output = forward(
            self.model, self._cache, input_ids=input_ids, attention_mask=mask.to(device), position_ids=position_ids
        )
        self._mask = mask
        self._lengths = [length + 1 for length in self._lengths]
        return output.logits[:, -1].float()

    def feed(self, tokens: Sequence[int]) -> None:
        """Set every row's next input token (the token its last step chose)."""
        self._next = list(tokens)


__all__ = ["DecodeBatch", "cache_from", "forward", "state_of"]
