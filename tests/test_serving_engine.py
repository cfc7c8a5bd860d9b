"""The serving engine on tiny models: every request's tokens equal an independent greedy loop (tiny_checkpoints)
or `generate` with the same seed, alone and under load; stops, cancellation, prefix reuse and bad input."""

from __future__ import annotations

import asyncio
import random

import pytest
import torch
from tiny_checkpoints import MetaReference, chain, greedy, make_checkpoint, random_model, tiny_config
from transformers import AutoModelForCausalLM, AutoTokenizer

from transformers_codellama.serving.engines.base import EngineRequest
from transformers_codellama.serving.engines.errors import EngineBusy, EngineError
from transformers_codellama.serving.engines.sampling import SamplingParams
from transformers_codellama.serving.engines.torch_batch.engine import TorchEngine
from transformers_codellama.serving.engines.torch_batch.stream import EngineStream
from transformers_codellama.stopping import COMPLETE, INFILL, stop_ids


@pytest.fixture(scope="module")
def model():
    return random_model(tiny_config(), seed=3)


def random_prompts(lengths, seed=0):
    rng = random.Random(seed)
    return [[1] + [rng.randrange(3, 32000) for _ in range(length - 1)] for length in lengths]


def serve(model, coroutine_function, **options):
    """Run `coroutine_function(engine)` against a started engine; stop it afterwards."""

    async def main():
        engine = TorchEngine(model, **options)
        engine.start()
        try:
            return await coroutine_function(engine)
        finally:
            engine.stop()

    return asyncio.run(main())


async def collect(stream: EngineStream) -> list[int]:
    return [token async for token in stream]


async def generate_all(engine, requests):
    streams = [engine.submit(request) for request in requests]
    return await asyncio.gather(*[collect(stream) for stream in streams]), streams


def test_greedy_under_load_equals_alone_and_the_reference(model):
    prompts = random_prompts([5, 37, 2, 60, 11, 23, 90, 8, 14])
    budgets = [30, 7, 25, 40, 1, 12, 18, 33, 20]
    requests = [EngineRequest(prompt, budget, ()) for prompt, budget in zip(prompts, budgets)]
    expected = [greedy(model, prompt, stop=[], max_new_tokens=budget) for prompt, budget in zip(prompts, budgets)]

    async def alone(engine):
        return [(await generate_all(engine, [request]))[0][0] for request in requests]

    async def together(engine):
        outputs, streams = await generate_all(engine, requests)
        assert [stream.finish_reason for stream in streams] == ["length"] * len(requests)
        assert [stream.prompt_tokens for stream in streams] == [len(prompt) for prompt in prompts]
        return outputs, engine.steps

    assert serve(model, alone, prefix_cache_tokens=0) == expected
    # 9 requests over 4 slots: rows join and leave the running batch while others decode.
    outputs, steps = serve(model, together, max_batch_size=4, prefix_cache_tokens=0)
    assert outputs == expected
    assert steps < sum(budgets) - len(budgets)  # decoding steps were shared, not run request by request


def test_requests_arriving_while_others_decode(model):
    prompts = random_prompts([12, 3, 45, 20], seed=1)
    expected = [greedy(model, prompt, stop=[], max_new_tokens=16) for prompt in prompts]

    async def staggered(engine):
        async def late(index):
            await asyncio.sleep(0.01 * index)
            return await collect(engine.submit(EngineRequest(prompts[index], 16, ())))

        return await asyncio.gather(*[late(index) for index in range(len(prompts))])

    assert serve(model, staggered) == expected


@pytest.fixture(scope="module")
def chain_checkpoint(tmp_path_factory):
    """A converted checkpoint whose greedy continuation after `<MID>` is `a b <EOT> c d </s> e ...`."""
    ref = MetaReference()
    a, b, c, d, e = (ref.sp.piece_to_id(piece) for piece in ["▁return", "▁x", "▁if", "▁y", "▁z"])
    transitions = chain(ref.mid, a, b, ref.eot, c, d, ref.eos, e, e)
    directory = make_checkpoint(tmp_path_factory.mktemp("chain"), transitions=transitions)
    return AutoModelForCausalLM.from_pretrained(directory), AutoTokenizer.from_pretrained(directory), ref


def test_each_request_keeps_its_own_stop_ids(chain_checkpoint):
    model, tokenizer, ref = chain_checkpoint
    prompt = ref.infilling_ids("def f(x):\n    ", "\n")
    assert prompt == tokenizer("def f(x):\n    ", suffix="\n")["input_ids"]
    infill, complete = stop_ids(tokenizer, INFILL), stop_ids(tokenizer, COMPLETE)
    requests = [
        EngineRequest(prompt, 10, tuple(infill)),
        EngineRequest(prompt, 10, tuple(complete)),
        EngineRequest(prompt, 10, ()),
        EngineRequest(prompt, 2, tuple(infill)),
    ]
    expected = [
        greedy(model, prompt, stop=request.stop_ids, max_new_tokens=request.max_new_tokens) for request in requests
    ]

    async def run(engine):
        outputs, streams = await generate_all(engine, requests)
        return outputs, [(stream.finish_reason, stream.stop_id) for stream in streams]

    outputs, endings = serve(model, run)
    assert outputs == expected
    assert len(outputs[0]) == 2 and len(outputs[1]) == 5 and len(outputs[2]) == 10
    assert endings == [("stop", ref.eot), ("stop", ref.eos), ("length", None), ("length", None)]
    assert ref.decode_infilling(outputs[0]) == " return x"


def test_seeded_sampling_equals_generate_alone_and_under_load(model):
    prompt = random_prompts([9], seed=2)[0]
    settings = [
        SamplingParams(temperature=0.8, seed=7),
        SamplingParams(temperature=1.0, top_p=0.9, seed=11),
        SamplingParams(temperature=1.3, top_k=20, top_p=0.95, seed=2**40),
    ]
    expected = []
    for sampling in settings:
        torch.manual_seed(sampling.seed)
        output = model.generate(
            torch.tensor([prompt]),
            do_sample=True,
            temperature=sampling.temperature,
            top_k=sampling.top_k or None,
            top_p=sampling.top_p,
            max_new_tokens=12,
            min_new_tokens=12,
            pad_token_id=0,
        )
        expected.append(output[0, len(prompt) :].tolist())
    assert len({tuple(tokens) for tokens in expected}) == len(settings)
    requests = [EngineRequest(prompt, 12, (), sampling) for sampling in settings]
    greedy_load = [EngineRequest(other, 12, ()) for other in random_prompts([4, 30], seed=5)]

    async def run(engine):
        alone = [(await generate_all(engine, [request]))[0][0] for request in requests]
        together, _ = await generate_all(engine, requests + greedy_load)
        return alone, together[: len(requests)]

    alone, together = serve(model, run)
    assert alone == expected
    assert together == expected


def test_top_k_one_and_tiny_top_p_are_greedy(model):
    prompt = random_prompts([15], seed=3)[0]
    expected = greedy(model, prompt, stop=[], max_new_tokens=10)
    requests = [
        EngineRequest(prompt, 10, (), SamplingParams(temperature=1.5, top_k=1)),
        EngineRequest(prompt, 10, (), SamplingParams(temperature=0.7, top_p=1e-6)),
    ]

    async def run(engine):
        return (await generate_all(engine, requests))[0]

    assert serve(model, run) == [expected, expected]


def test_cancelled_long_stream_leaves_the_batch_at_once(model):
    long_prompt, short_prompt = random_prompts([10, 6], seed=4)
    expected = greedy(model, short_prompt, stop=[], max_new_tokens=5)

    async def run(engine):
        stream = engine.submit(EngineRequest(long_prompt, 5000, ()))
        received = []
        async for token in stream:
            received.append(token)
            if len(received) == 3:
                await stream.aclose()
        steps_at_cancel = engine.steps
        assert engine.active == 0  # the slot is free once aclose returns
        short = await collect(engine.submit(EngineRequest(short_prompt, 5, ())))
        return stream, received, steps_at_cancel, engine.steps, short

    stream, received, steps_at_cancel, steps_after, short = serve(model, run)
    assert stream.finish_reason == "cancelled" and len(received) == 3
    assert steps_at_cancel <= 2 + 1  # the cancelled request ran at most one step past its third token
    assert steps_after - steps_at_cancel == 4  # the next request's steps only (its first token is the prefill's)
    assert short == expected


def test_cancel_from_sync_code_and_before_admission(model):
    prompts = random_prompts([8, 8], seed=6)

    async def run(engine):
        first = engine.submit(EngineRequest(prompts[0], 4000, ()))
        second = engine.submit(EngineRequest(prompts[1], 4000, ()))
        second.cancel()  # may still be waiting in the queue
        assert await collect(second) == []
        tokens = []
        async for token in first:
            tokens.append(token)
            first.cancel()
        await first.aclose()  # after cancel: returns once the slot is free
        return first.finish_reason, second.finish_reason, tokens, engine.active

    first_reason, second_reason, tokens, active = serve(model, run)
    assert (first_reason, second_reason, len(tokens), active) == ("cancelled", "cancelled", 1, 0)


def shared_length(a, b):
    count = 0
    while count < min(len(a), len(b)) and a[count] == b[count]:
        count += 1
    return count


def test_prefix_cache_gives_cold_results_and_reports_cached_tokens(chain_checkpoint):
    ref = chain_checkpoint[2]
    model = random_model(tiny_config(), seed=8)
    code = "import os\n\n\ndef walk(top, topdown=True):\n    for name in os.listdir(top):\n        yield name\n"
    # Consecutive editor requests: the cursor moves on, the prefix grows by a keystroke or is edited near its end.
    cuts = [60, 61, 62, 58, 75, 75]
    prompts = [ref.infilling_ids(code[:cut], code[cut:]) for cut in cuts]
    prompts.append(ref.completion_ids(code))
    expected = [greedy(model, prompt, stop=[ref.eot, ref.eos], max_new_tokens=6) for prompt in prompts]

    async def one_by_one(engine):
        outputs, cached = [], []
        for prompt in prompts:
            stream = engine.submit(EngineRequest(prompt, 6, (ref.eot, ref.eos)))
            outputs.append(await collect(stream))
            cached.append(stream.cached_tokens)
        return outputs, cached

    cold, cold_cached = serve(model, one_by_one, prefix_cache_tokens=0)
    warm, warm_cached = serve(model, one_by_one)
    assert cold == warm == expected
    assert cold_cached == [0] * len(prompts)
    # Each prompt reuses what it shares with the prompts before it (all still held), up to its last token.
    best = [
        max([0] + [min(shared_length(prompt, earlier), len(prompt) - 1) for earlier in prompts[:index]])
        for index, prompt in enumerate(prompts)
    ]
    assert warm_cached == best
    assert warm_cached[5] == len(prompts[5]) - 1 and warm_cached[1] > len(prompts[1]) // 2


def test_prefix_cache_stays_within_its_budget(model):
    prompts = random_prompts([40, 40, 40, 100], seed=9)
    prompts[1] = prompts[0][:30] + prompts[1][30:]
    prompts[2][0], prompts[3][0] = 2, 4  # nothing in common with the others
    expected = [greedy(model, prompt, stop=[], max_new_tokens=3) for prompt in prompts]

    async def run(engine):
        outputs, cached, held = [], [], []
        for prompt in [*prompts, prompts[0]]:
            stream = engine.submit(EngineRequest(prompt, 3, ()))
            outputs.append(await collect(stream))
            cached.append(stream.cached_tokens)
            held.append(engine.prefix_cache.tokens)
        return outputs, cached, held

    outputs, cached, held = serve(model, run, prefix_cache_tokens=90)
    assert outputs[:4] == expected and outputs[4] == expected[0]
    assert max(held) <= 90
    # [0] and [1] share 30 tokens; [2] evicts [0], least recently used; [3] (100 tokens) is over budget and never
    # held; [0] again reuses its 30 tokens shared with [1].
    assert cached == [0, 30, 0, 0, 30]
    assert held == [40, 80, 80, 80, 80]


def test_warm_up_with_zero_new_tokens(model):
    prompt = random_prompts([50], seed=10)[0]

    async def run(engine):
        warm = engine.submit(EngineRequest(prompt, 0, ()))
        tokens = await collect(warm)
        stream = engine.submit(EngineRequest([*prompt, 5], 4, ()))
        return tokens, warm.finish_reason, await collect(stream), stream.cached_tokens

    tokens, reason, output, cached = serve(model, run)
    assert (tokens, reason, cached) == ([], "length", 50)
    assert output == greedy(model, [*prompt, 5], stop=[], max_new_tokens=4)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (EngineRequest([], 4, ()), "prompt_ids must be a non-empty list"),
        (EngineRequest([1, 32016], 4, ()), "not a token id in [0, 32016)"),
        (EngineRequest([1, -2], 4, ()), "not a token id"),
        (EngineRequest([1, 2], -1, ()), "max_new_tokens must be an integer >= 0"),
        (EngineRequest([1] * 10, 16380, ()), "exceeds the model's context of 16384 tokens"),
        (EngineRequest([1], 4, ("x",)), "stop_ids must be token ids"),  # type: ignore[arg-type]
        (EngineRequest([1], 4, (), SamplingParams(temperature=-1)), "temperature must be"),
        (EngineRequest([1], 4, (), SamplingParams(temperature=float("nan"))), "temperature must be"),
        (EngineRequest([1], 4, (), SamplingParams(top_p=0)), "top_p must be in (0, 1]"),
        (EngineRequest([1], 4, (), SamplingParams(top_k=-3)), "top_k must be an integer >= 0"),
        (EngineRequest([1], 4, (), SamplingParams(seed=-1)), "seed must be an integer"),
    ],
)
def test_bad_requests_are_refused_with_one_line(model, request_, message):
    async def run(engine):
        with pytest.raises(ValueError) as caught:
            engine.submit(request_)
        # The engine goes on serving.
        return str(caught.value), await collect(engine.submit(EngineRequest([1, 2, 3], 2, ())))

    text, tokens = serve(model, run)
    assert message in text and "\n" not in text
    assert tokens == greedy(model, [1, 2, 3], stop=[], max_new_tokens=2)


def test_full_queue_and_stop(model):
    async def run():
        engine = TorchEngine(model, max_queue=2)  # not started: requests wait
        streams = [engine.submit(EngineRequest([1, 2], 4, ())) for _ in range(2)]
        with pytest.raises(EngineBusy, match="queue is full"):
            engine.submit(EngineRequest([1, 2], 4, ()))
        engine.stop()
        return [await collect(stream) for stream in streams], [stream.finish_reason for stream in streams]

    assert asyncio.run(run()) == ([[], []], ["cancelled", "cancelled"])
    with pytest.raises(RuntimeError):  # outside an event loop
        TorchEngine(model).submit(EngineRequest([1, 2], 4, ()))


def test_a_failing_request_ends_alone(model):
    poison = 31999
    prompts = random_prompts([7, 12], seed=11)
    expected = [greedy(model, prompt, stop=[], max_new_tokens=8) for prompt in prompts]

    def refuse_poison(module, args):
        if (args[0] == poison).any():
            raise RuntimeError("poisoned input")

    hook = model.model.embed_tokens.register_forward_pre_hook(refuse_poison)
    try:

        async def run(engine):
            good = [engine.submit(EngineRequest(prompt, 8, ())) for prompt in prompts]
            bad = engine.submit(EngineRequest([1, poison, 5], 8, ()))
            with pytest.raises(EngineError, match="poisoned input"):
                await collect(bad)
            outputs = await asyncio.gather(*[collect(stream) for stream in good])
            after = await collect(engine.submit(EngineRequest(prompts[0], 8, ())))
            return bad.finish_reason, outputs, after

        reason, outputs, after = serve(model, run)
    finally:
        hook.remove()
    assert reason == "error"
    assert outputs == expected and after == expected[0]


def test_a_reader_that_stops_early_cancels_its_request(model):
    prompt = random_prompts([9], seed=12)[0]

    async def run(engine):
        async def read_two():
            tokens = []
            async for token in engine.submit(EngineRequest(prompt, 4000, ())):
                tokens.append(token)
                if len(tokens) == 2:
                    break
            return tokens

        tokens = await read_two()  # the abandoned iterator is closed and its request cancelled
        task = asyncio.ensure_future(collect(engine.submit(EngineRequest(prompt, 4000, ()))))
        await asyncio.sleep(0.05)
        task.cancel()  # a reader task cancelled while it waits for a token
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(500):
            if not engine.active:
                break
            await asyncio.sleep(0.01)
        return tokens, engine.active, engine.steps

    tokens, active, steps = serve(model, run)
    assert len(tokens) == 2 and active == 0
    assert steps < 1000  # neither request ran on towards its 4000 tokens
