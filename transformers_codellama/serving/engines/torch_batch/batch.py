"""The running batch of the engine: one decoding step for every request in it, over the model's own forward.

Each request arrives with its prompt state from its own prefill. The batch keeps the rows' keys and values aligned on
the right (shorter rows padded on the left and masked out), so one forward computes the next logits of every row:
each row at its own position (`position_ids`), attending only to its own tokens (`attention_mask`).

The keys and values live in buffers with room for more rows and positions, and the forward's cache is a view of
them (`_BufferLayer`): a step writes each row's new position into the next free column in place. A `DynamicCache`
would concatenate instead, copying every row's whole state at every step, a cost that grows with the batch (the
rows' states, not the weights, are what a larger batch adds). A request joining the batch is copied into a free row;
one leaving is compacted away, and the columns no row needs any more are dropped by moving the window's start. The
buffers are reallocated, with room to spare, only when a row or a column does not fit.

A step may also verify drafted tokens (`speculate`, then `accept`): each row feeds its next token and its draft in one
forward, and keeps the positions of the tokens it accepted. The rejected ones stay behind as masked-out columns (a
hole in the row, which its position ids skip), so rows that accept different lengths stay aligned on `_end` without
moving any state; the next reallocation compacts the holes away.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

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


def forward(model: PreTrainedModel, cache: Any, **inputs: Any) -> Any:
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


class _BufferLayer(DynamicLayer):
    """One decoder layer of the running batch: `keys`/`values` are the window `[:rows, :, start:end]` of the batch's
    buffers, and `update` writes the new positions after `end` in place (the batch makes room before each step)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()
        self.buffers = (keys, values)
        self.device, self.dtype = keys.device, keys.dtype
        self.is_initialized = True
        self.rows = self.start = self.end = 0
        self.view(0, 0, 0)

    def view(self, rows: int, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Show rows `[:rows]` and positions `[start:end]` of the buffers; returns (keys, values) shown."""
        self.rows, self.start, self.end = rows, start, end
        keys, values = self.buffers[0][:rows, :, start:end], self.buffers[1][:rows, :, start:end]
        self.keys, self.values = keys, values
        return keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.end + key_states.shape[-2]
        self.buffers[0][: self.rows, :, self.end : end] = key_states
        self.buffers[1][: self.rows, :, self.end : end] = value_states
        return self.view(self.rows, self.start, end)


def _split_head(model: PreTrainedModel) -> tuple[Any, torch.Tensor] | None:
    """(decoder, output weight) when `model`'s logits are exactly `lm_head(decoder(...))` with a plain linear head
    on the CPU (a Llama: Code Llama's own class included), else None."""
    from transformers import LlamaForCausalLM

    head = model.get_output_embeddings() if isinstance(model, LlamaForCausalLM) else None
    if type(head) is not torch.nn.Linear or head.bias is not None or head.weight.device.type != "cpu":
        return None
    return model.get_decoder(), head.weight


class DecodeBatch(Generic[Row]):
    """The requests decoding together: their rows of keys and values, positions, masks and next input tokens.

    Args:
        model: the causal LM whose forward runs the steps.
        rows: how many rows the buffers hold at first (the engine's batch size; more grow them).
    """

    def __init__(self, model: PreTrainedModel, rows: int = 8) -> None:
        self.model = model
        self._split = _split_head(model)
        self._row_capacity = max(1, rows)
        self._reset()

    def _reset(self) -> None:
        self.rows: list[Row] = []
        self._layers: list[_BufferLayer] = []
        self._cache: Cache | None = None
        self._mask = torch.zeros((0, 0), dtype=torch.long)
        self._start = self._end = 0  # the columns in use, shared by every row (each row right-aligned at `_end`)
        self._lengths: list[int] = []  # tokens in each row's state (its next position id)
        self._spans: list[int] = []  # columns from each row's first token to `_end`: its length plus its holes
        self._next: list[int] = []
        self._pending = 0  # positions of the last `speculate` awaiting `accept`

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def width(self) -> int:
        """Positions held per row (the longest row's tokens)."""
        return self._end - self._start

    def _view(self) -> None:
        for layer in self._layers:
            layer.view(len(self.rows), self._start, self._end)

    def _reallocate(self, rows: int, left: int, right: int, like: KeyValues) -> None:
        """New buffers holding `rows` rows, with `left` free columns before the positions in use and `right` after;
        the rows in use are copied over. `like` gives each layer's heads, head size, dtype and device."""
        holes = self._spans != self._lengths
        width = max(self._lengths, default=0) if holes else self.width
        columns = left + width + right
        count = len(self.rows)
        valid = [self._mask[row, self._start : self._end].nonzero().squeeze(1) for row in range(count)] if holes else []
        layers: list[Any] = []
        for index, (keys, values) in enumerate(like):
            shape = (rows, keys.shape[1], columns, keys.shape[3])
            # Uninitialised: only the positions in use are ever read, and `join` zeroes a row's padding there.
            new_keys = torch.empty(shape, dtype=keys.dtype, device=keys.device)
            new_values = torch.empty((*shape[:3], values.shape[3]), dtype=values.dtype, device=values.device)
            if count and not holes:
                old_keys, old_values = self._layers[index].view(count, self._start, self._end)
                new_keys[:count, :, left : left + width] = old_keys
                new_values[:count, :, left : left + width] = old_values
            elif count:  # compact: each row's kept columns, right-aligned, zeros before them
                old_keys, old_values = self._layers[index].view(count, self._start, self._end)
                for row, columns_kept in enumerate(valid):
                    first = left + width - len(columns_kept)
                    for new, old in ((new_keys, old_keys), (new_values, old_values)):
                        new[row, :, left:first] = 0
                        new[row, :, first : left + width] = old[row].index_select(1, columns_kept.to(old.device))
            layers.append(_BufferLayer(new_keys, new_values))
        mask = torch.zeros((rows, columns), dtype=torch.long)
        if holes:
            for row, length in enumerate(self._lengths):
                mask[row, left + width - length : left + width] = 1
            self._spans = list(self._lengths)
        else:
            mask[:count, left : left + width] = self._mask[:count, self._start : self._end]
        self._layers, self._mask = layers, mask
        self._cache = Cache(layers=layers)
        self._start, self._end = left, left + width
        self._row_capacity = rows
        self._view()

    @staticmethod
    def _spare(width: int) -> int:
        """Columns to leave free on a side when reallocating: the copy of the rows in use is then paid at most once
        per this many steps (a step without room copies them, as a concatenation would at every step)."""
        return 64 + width // 8

    def join(self, row: Row, state: KeyValues, next_token: int) -> None:
        """Add `row`, whose prompt state (batch 1) is `state`, to decode `next_token` next."""
        length = state[0][0].shape[2]
        count = len(self.rows)
        rows = self._row_capacity if count < self._row_capacity else 2 * self._row_capacity
        grow = max(0, length - self.width)  # columns the window must grow by on its left
        if not self._layers or rows > self._mask.shape[0] or grow > self._start:
            compacted = max(self._lengths) if self._spans != self._lengths else self.width  # after `_reallocate`
            left = max(0, length - compacted) + self._spare(max(length, compacted))
            right = self._spare(max(length, compacted)) if not count else self._mask.shape[1] - self._end
            self._reallocate(rows, left, right, state)
            grow = max(0, length - self.width)
        # Padding is masked out, and zero so that it stays a finite number (attention multiplies it by 0): the
        # columns the window grows by, for the rows already there (their mask is 0 there: never used, or cleared
        # when their rows left), and the new row's columns before its tokens.
        start, end = self._start - grow, self._end
        for layer, (keys, values) in zip(self._layers, state):
            for buffer, new in zip(layer.buffers, (keys, values)):
                buffer[:count, :, start : self._start] = 0
                buffer[count, :, start : end - length] = 0
                buffer[count, :, end - length : end] = new[0]
        self._start = start
        self._mask[count, self._start : end - length] = 0
        self._mask[count, end - length : end] = 1
        self.rows.append(row)
        self._lengths.append(length)
        self._spans.append(length)
        self._next.append(next_token)
        self._view()

    def keep(self, indices: Sequence[int]) -> None:
        """Keep only the rows at `indices`; drop the padding columns no kept row uses.

        The kept rows from the back move into the places of the rows that left, so only they are copied, not every
        row after the first that left: the order of `rows` (and of the next tokens `feed` set) changes then.
        """
        if len(indices) == len(self.rows):
            return
        if not indices:
            self._reset()
            return
        count, kept = len(indices), set(indices)
        holes = [place for place in range(count) if place not in kept]
        movers = sorted(index for index in kept if index >= count)  # as many as there are holes
        order = list(range(count))
        if movers:
            for hole, mover in zip(holes, movers):
                order[hole] = mover
            source, target = torch.tensor(movers), torch.tensor(holes)
            for layer in self._layers:
                for buffer in layer.buffers:
                    buffer[target.to(buffer.device)] = buffer.index_select(0, source.to(buffer.device))
            self._mask[target] = self._mask.index_select(0, source)
        # The rows that left may have masked columns in; clear them so a later row never attends to them.
        self._mask[count:] = 0
        self.rows = [self.rows[i] for i in order]
        self._lengths = [self._lengths[i] for i in order]
        self._spans = [self._spans[i] for i in order]
        self._next = [self._next[i] for i in order]
        self._start = self._end - max(self._spans)
        self._view()

    def step(self) -> torch.Tensor:
        """One forward over every row's next token; returns the next-token logits, shape (rows, vocab), float32."""
        logits = self._forward([[token] for token in self._next])
        self._end += 1
        self._lengths = [length + 1 for length in self._lengths]
        self._spans = [span + 1 for span in self._spans]
        return logits[:, 0]

    def speculate(self, drafts: Sequence[Sequence[int]]) -> torch.Tensor:
        """One forward over every row's next token followed by its draft (drafts may differ in length, or be
        empty); returns the logits after each of those tokens, shape (rows, 1 + longest draft, vocab), float32.
        `accept` must follow, with how many of each row's draft tokens it keeps."""
        inputs = [[token, *draft] for token, draft in zip(self._next, drafts)]
        logits = self._forward(inputs)
        width = logits.shape[1]
        self._pending = width
        # A row's padding after its draft is never attended to: mask it out now.
        for row, tokens in enumerate(inputs):
            self._mask[row, self._end + len(tokens) : self._end + width] = 0
        self._end += width
        self._spans = [span + width for span in self._spans]
        return logits

    def accept(self, accepted: Sequence[int]) -> None:
        """After `speculate`: keep each row's next token and its first `accepted[row]` draft tokens; the positions
        after them are masked out (the cache's rollback) and the row's next position follows its kept tokens."""
        width, self._pending = self._pending, 0
        for row, count in enumerate(accepted):
            kept = 1 + count
            self._mask[row, self._end - width + kept : self._end] = 0
            self._lengths[row] += kept

    def _forward(self, inputs: list[list[int]]) -> torch.Tensor:
        """The model over `inputs` (each row's new tokens, padded on the right to the longest), written into the
        columns after `_end` (`_end` is left as it was); the logits after each input token, (rows, width, vocab)."""
        count = len(self.rows)
        width = max(len(tokens) for tokens in inputs)
        if self._end + width > self._mask.shape[1]:  # no free column left for this step's positions
            like = [layer.buffers for layer in self._layers]
            self._reallocate(self._row_capacity, 0, self._spare(self.width) + width, like)
        device = self.model.device
        input_ids = torch.tensor([tokens + [tokens[-1]] * (width - len(tokens)) for tokens in inputs], device=device)
        position_ids = torch.tensor(self._lengths).unsqueeze(1) + torch.arange(width)
        self._mask[:count, self._end : self._end + width] = 1
        mask = self._mask[:count, self._start : self._end + width].to(device)
        step = {"input_ids": input_ids, "attention_mask": mask, "position_ids": position_ids.to(device)}
        if self._split is None or count == 1:  # one row: exactly the model's own forward, as `generate` runs it
            logits = forward(self.model, self._cache, **step).logits
        else:
            # The same logits, with the product taken as weight x hidden^T: for a few rows against a vocabulary-wide
            # weight, the CPU's BLAS (MKL) is about 1.5 times faster that way round than as `lm_head` computes it
            # (hidden x weight^T), and the output layer is the largest matrix product of a decoding step.
            decoder, weight = self._split
            hidden = forward(decoder, self._cache, **step).last_hidden_state
            logits = torch.mm(weight, hidden.reshape(-1, hidden.shape[-1]).t()).t().reshape(count, width, -1)
        return logits.float()

    def feed(self, tokens: Sequence[int]) -> None:
        """Set every row's next input token (the token its last step chose), before `keep` drops rows that ended
        (their entries are then never read)."""
        self._next = list(tokens)


__all__ = ["DecodeBatch", "cache_from", "forward", "state_of"]
