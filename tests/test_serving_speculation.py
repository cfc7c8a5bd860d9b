"""Prompt-lookup speculation in the engine, the batch's memory budget and the default thread count: greedy tokens identical with and without it (random weights, a model that
repeats itself, the trained tiny model on PSM, SPM and plain prompts, batched rows accepting different lengths), the
accept/reject rule's exact distribution, the n-gram index, and the batch's rollback of rejected positions."""

from __future__ import annotations

import asyncio
import random

import pytest
import torch
from tiny_checkpoints import greedy, random_model, tiny_config, transition_model

from transformers_codellama.serving.engines.base import EngineRequest
from transformers_codellama.serving.engines.host import default_threads
from transformers_codellama.serving.engines.sampling import SamplingParams, TokenChooser
from transformers_codellama.serving.engines.speculation import DraftPlanner, NgramIndex, PromptLookup
from transformers_codellama.serving.engines.torch_batch.engine import MAX_ROWS, TorchEngine, cache_bytes_per_token
from transformers_codellama.tiny_checkpoint import CONTEXT

LOOKUP = PromptLookup(draft_tokens=4, ngram=2)


def run(model, requests, **options):
    """Every request's tokens from one engine, all submitted at once; and the engine (for its counters)."""

    async def main():
        engine = TorchEngine(model, **options)
        engine.start()
        try:
            streams = [engine.submit(request) for request in requests]

            async def collect(stream):
                return [token async for token in stream]

            return await asyncio.gather(*[collect(stream) for stream in streams]), engine
        finally:
            engine.stop()

    return asyncio.run(main())


def repetitive_prompts(count, seed=0, vocab=32000):
    """Prompts that repeat a few short phrases, so that their n-grams recur and drafts are proposed."""
    rng = random.Random(seed)
    prompts = []
    for index in range(count):
        phrases = [[rng.randrange(3, vocab) for _ in range(rng.randrange(2, 6))] for _ in range(3)]
        prompts.append([1] + [token for _ in range(4 + index) for token in rng.choice(phrases)])
    return prompts


def test_ngram_index_drafts_what_followed_the_latest_earlier_match():
    index = NgramIndex([1, 5, 6, 7, 8, 5, 6, 9], ngram=2)
    assert index.draft(3) == []  # (6, 9) never occurred before
    index.extend([5, 6])
    assert index.draft(3) == [9, 5, 6]  # the latest (5, 6) is followed by 9, not the first one's 7
    assert index.draft(1) == [9] and index.draft(0) == []
    index.extend([9])
    assert index.draft(10) == [5, 6, 9]  # a match near the end drafts only the tokens there are
    with pytest.raises(ValueError, match="draft_tokens must be an integer >= 1; got 0"):
        PromptLookup(draft_tokens=0).check()


def test_greedy_tokens_are_identical_with_random_weights():
    model = random_model(tiny_config(), seed=5)
    prompts = [*repetitive_prompts(6), [1, *random.Random(1).sample(range(3, 32000), 30)]]
    budgets = [40, 12, 33, 5, 27, 50, 20]
    requests = [EngineRequest(prompt, budget, ()) for prompt, budget in zip(prompts, budgets)]
    expected = [greedy(model, prompt, stop=[], max_new_tokens=budget) for prompt, budget in zip(prompts, budgets)]
    plain, _ = run(model, requests, prefix_cache_tokens=0)
    speculated, engine = run(model, requests, prefix_cache_tokens=0, speculation=LOOKUP)
    assert plain == expected and speculated == expected
    assert engine.drafted > 0  # drafts were proposed and verified (a random model rejects most)


def cycling_model():
    """A model that walks cycles of 3, 5 and 7 tokens: once a cycle has gone round, every draft is right."""
    cycles = [list(range(10, 13)), list(range(20, 25)), list(range(30, 37))]
    transitions = {cycle[i]: cycle[(i + 1) % len(cycle)] for cycle in cycles for i in range(len(cycle))}
    return transition_model(tiny_config(vocab_size=64), transitions)


def test_greedy_tokens_are_identical_when_rows_accept_different_lengths():
    model = cycling_model()
    prompts = [[1, 10], [1, 20, 21], [1, 33], [1, 2, 3, 4, 5, 30]]
    budgets = [30, 17, 41, 9]
    requests = [EngineRequest(prompt, budget, ()) for prompt, budget in zip(prompts, budgets)]
    expected = [greedy(model, prompt, stop=[], max_new_tokens=budget) for prompt, budget in zip(prompts, budgets)]
    speculated, engine = run(model, requests, speculation=PromptLookup(draft_tokens=3, ngram=1))
    assert speculated == expected
    assert engine.accepted > 0.5 * engine.drafted > 0
    assert engine.steps < sum(budgets) // 2  # several tokens per step


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The shipped trained tiny model and its tokenizer, through Meta's layout and the converter."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transformers_codellama.conversion.convert import convert
    from transformers_codellama.tiny_checkpoint import write_meta_checkpoint

    root = tmp_path_factory.mktemp("trained")
    meta = write_meta_checkpoint(root / "CodeLlama-tiny")
    convert(input_dir=meta, output_dir=root / "converted", dtype="float32", context_length=CONTEXT)
    model = AutoModelForCausalLM.from_pretrained(root / "converted").eval()
    return model, AutoTokenizer.from_pretrained(root / "converted")


def test_greedy_tokens_are_identical_on_the_trained_model_psm_spm_and_plain(trained):
    model, tokenizer = trained
    prefix = "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        "
    suffix = "\n\n    def pop(self):\n        return self.items.pop()\n"
    prompts = [
        tokenizer(prefix, suffix=suffix)["input_ids"],
        tokenizer(prefix, suffix=suffix, suffix_first=True)["input_ids"],
        tokenizer(prefix)["input_ids"],
        tokenizer("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n")[
            "input_ids"
        ],
    ]
    requests = [EngineRequest(prompt, 40, ()) for prompt in prompts]
    expected = [greedy(model, prompt, stop=[], max_new_tokens=40) for prompt in prompts]
    plain, _ = run(model, requests)
    speculated, engine = run(model, requests, speculation=PromptLookup(draft_tokens=4, ngram=2))
    assert plain == expected and speculated == expected
    assert engine.accepted > 0


def test_sampled_verification_keeps_the_distribution():
    # One position, a 4-token vocabulary: the draft token 1 is accepted with probability p(1), else the residual
    # draws the others in proportion; the tokens' frequencies must match p whatever the draft.
    logits = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0]])
    expected = torch.softmax(logits[0], dim=-1)
    draws = 20000
    for draft in (1, 3):
        chooser = TokenChooser(SamplingParams(temperature=1.0, seed=1234))
        counts = torch.zeros(4)
        for _ in range(draws):
            counts[chooser.verify(logits, [draft], [0, 0])[0]] += 1
        # 4 standard deviations of a binomial frequency at n = 20000: about 0.014 at most.
        torch.testing.assert_close(counts / draws, expected, atol=0.015, rtol=0)


def test_sampled_requests_run_with_speculation():
    model = cycling_model()
    sampling = SamplingParams(temperature=0.2, seed=7)  # peaked: the cycle's next token most of the time
    requests = [EngineRequest(prompt, 30, (), sampling) for prompt in ([1, 10], [1, 20, 21], [1, 33])]
    lookup = PromptLookup(draft_tokens=3, ngram=1)
    first, engine = run(model, requests, speculation=lookup)
    again, _ = run(model, requests, speculation=lookup)
    assert first == again and [len(tokens) for tokens in first] == [30, 30, 30]  # seeded: reproducible
    assert engine.accepted > 0


def test_the_planner_drafts_only_when_it_pays():
    planner = DraftPlanner()
    # Steps whose time is mostly per token (an output layer that dominates): drafting pays only when most drafts
    # are kept.
    for tokens in (8, 16, 40, 8, 24):
        planner.observe(tokens, 0.0001 + 0.001 * tokens)
    fixed, per_token = planner.costs()
    assert per_token == pytest.approx(0.001, rel=0.1) and fixed < 0.002  # (shrunk a little towards the prior)
    drafts = [[5, 6, 7, 8]] * 8
    assert planner.length(drafts, [0.3] * 8, 4) == 0
    assert planner.length(drafts, [0.99] * 8, 4) == 4
    # Steps whose time is mostly fixed (weights read once per step): even half-right drafts pay.
    planner = DraftPlanner()
    for tokens in (1, 5, 2, 8, 1):
        planner.observe(tokens, 0.05 + 0.0001 * tokens)
    assert planner.length([[5, 6, 7, 8]], [0.5], 4) == 4
    assert planner.length([[]], [0.9], 4) == 0


def test_memory_budget_limits_the_rows_decoded_together():
    model = random_model(tiny_config(), seed=5)
    per_token = cache_bytes_per_token(model.config, torch.float32)
    assert per_token == 2 * 2 * 4 * 16 * 4  # 2 layers, 4 key-value heads of 16, float32
    prompts = [[1, *random.Random(index).sample(range(3, 32000), 20)] for index in range(6)]
    requests = [EngineRequest(prompt, 12, ()) for prompt in prompts]
    expected = [greedy(model, prompt, stop=[], max_new_tokens=12) for prompt in prompts]
    # Room for two rows of prompt + new tokens (+ spare) at a time: the others wait, and all still finish right.
    outputs, engine = run(model, requests, cache_memory=2 * (21 + 12 + 8) * per_token)
    assert outputs == expected
    assert engine.max_batch_size == MAX_ROWS and engine.cache_tokens == 2 * (21 + 12 + 8)
    assert engine.steps >= 3 * 11  # never more than two requests decoding at once


def test_default_threads_never_oversubscribes(monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.1, 0.0, 0.0))
    assert default_threads() == 1  # another busy process on one of the two cores
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert default_threads() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 0.0, 0.0))
    assert default_threads() == 1  # never below one
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 0.0, 0.0))
    assert default_threads() == 2  # never above torch's own default (the physical cores)


def test_the_planner_leaves_out_drafts_that_promise_less_than_its_margin():
    planner = DraftPlanner()
    for tokens in (1, 2, 1, 3, 2, 1, 2):
        planner.observe(tokens, 0.003 + 0.0003 * tokens)  # the trained tiny model's step on one core
    fixed, per_token = planner.costs()
    plain = 1 / (fixed + per_token)

    def gain(acceptance: float) -> float:  # one draft token: expected tokens per second over a plain step's
        return (1 + acceptance) / (fixed + 2 * per_token) / plain

    # An acceptance whose one-token draft pays a little (as the edit workload's 0.1 to 0.2 did) but under the margin,
    # and one well over it.
    low = next(a / 100 for a in range(1, 100) if 1.01 < gain(a / 100) < 1 + DraftPlanner.MARGIN)
    high = next(a / 100 for a in range(1, 100) if gain(a / 100) > 1.2 + DraftPlanner.MARGIN)
    assert planner.length([[7]], [low], 1) == 0
    assert planner.length([[7]], [high], 1) == 1
