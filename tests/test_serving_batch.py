"""The engine's running batch (`DecodeBatch`) on tiny models: rows joining shorter or longer than the batch's width,
leaving from its middle, decoding past the buffers' free columns and beyond the rows they first held; every row's
tokens equal an independent greedy loop over the row alone (tiny_checkpoints.greedy, no KV cache)."""

from __future__ import annotations

import random

import pytest
import torch
from tiny_checkpoints import greedy, random_model, tiny_config
from transformers import DynamicCache

from transformers_codellama.serving.engines.torch_batch.batch import DecodeBatch, forward, state_of


def random_prompt(length: int, rng: random.Random) -> list[int]:
    return [1] + [rng.randrange(3, 32000) for _ in range(length - 1)]


def prefill(model, prompt: list[int]):
    """The prompt's state (batch 1) and its first greedy token, as the engine's prefill computes them."""
    cache = DynamicCache()
    with torch.inference_mode():
        output = forward(model, cache, input_ids=torch.tensor([prompt]))
    return state_of(cache), int(output.logits[0, -1].argmax())


class PoisonedBatch(DecodeBatch):
    """A `DecodeBatch` whose buffers hold NaN outside the rows and positions in use after every reallocation, as
    uninitialised memory may: a step that read any of it (padding not zeroed, a stale row) would give NaN logits."""

    def _reallocate(self, rows, left, right, like):
        super()._reallocate(rows, left, right, like)
        for layer in self._layers:
            for buffer in layer.buffers:
                buffer[len(self.rows) :] = float("nan")
                buffer[:, :, : self._start] = float("nan")
                buffer[:, :, self._end :] = float("nan")


def run_schedule(
    model, schedule: dict[int, list[tuple[list[int], int]]], rows: int
) -> dict[tuple[int, ...], list[int]]:
    """Decode with one `DecodeBatch`: at step `s`, the requests `schedule[s]` (prompt, new tokens) join; a request
    leaves once it has its tokens. Returns each prompt's tokens."""
    batch = PoisonedBatch(model, rows=rows)
    budgets: dict[tuple[int, ...], int] = {}
    out: dict[tuple[int, ...], list[int]] = {}
    step = 0
    while step <= max(schedule) or len(batch):
        for prompt, new_tokens in schedule.get(step, []):
            state, token = prefill(model, prompt)
            key = tuple(prompt)
            budgets[key], out[key] = new_tokens, [token]
            if new_tokens > 1:
                batch.join(key, state, token)
        if len(batch):
            with torch.inference_mode():
                tokens = batch.step().argmax(dim=-1).tolist()
            keep = []
            for index, (key, token) in enumerate(zip(batch.rows, tokens)):
                out[key].append(token)
                if len(out[key]) < budgets[key]:
                    keep.append(index)
            batch.feed(tokens)
            batch.keep(keep)
        step += 1
    return out


@pytest.mark.parametrize("key_value_heads", [4, 2], ids=["multi-head", "grouped-query"])
def test_rows_joining_and_leaving_give_each_rows_greedy_tokens(key_value_heads):
    model = random_model(tiny_config(num_key_value_heads=key_value_heads), seed=5)
    rng = random.Random(key_value_heads)
    schedule = {
        0: [(random_prompt(6, rng), 90), (random_prompt(20, rng), 9)],  # 90 tokens: past the first free columns
        2: [(random_prompt(120, rng), 12)],  # longer than the batch: its window grows to the left
        3: [(random_prompt(3, rng), 30), (random_prompt(40, rng), 5)],  # 4 rows, then 5: beyond the first 4 rows
        9: [(random_prompt(7, rng), 1)],  # done at its prefill: never joins
        12: [(random_prompt(300, rng), 20)],  # after rows left from the middle; much longer than the rest
        40: [(random_prompt(2, rng), 25)],
        45: [(random_prompt(150, rng), 10)],  # longer than the rest again, into the columns the 300 left free
    }
    generated = run_schedule(model, schedule, rows=4)
    expected = {
        tuple(prompt): greedy(model, prompt, stop=[], max_new_tokens=new_tokens)
        for requests in schedule.values()
        for prompt, new_tokens in requests
    }
    assert generated == expected


def test_a_batch_emptied_and_refilled_starts_afresh():
    model = random_model(tiny_config(), seed=6)
    rng = random.Random(0)
    first, second = random_prompt(50, rng), random_prompt(4, rng)
    generated = run_schedule(model, {0: [(first, 6)], 10: [(second, 8)]}, rows=1)
    assert generated[tuple(first)] == greedy(model, first, stop=[], max_new_tokens=6)
    assert generated[tuple(second)] == greedy(model, second, stop=[], max_new_tokens=8)
