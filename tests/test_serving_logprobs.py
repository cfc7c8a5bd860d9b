"""Log-probabilities and penalties in the batch engine, against independent references: `generate` itself
(`repetition_penalty`, `output_logits`, `output_scores`), the model's own forward + log_softmax over the prompt, and a
plain greedy loop written from OpenAI's definition of the frequency and presence penalties."""

from __future__ import annotations

import asyncio
import json
import math
import random

import httpx
import ollama
import openai
import pytest
import torch
from huggingface_hub import InferenceClient
from live_server import serve
from tiny_checkpoints import greedy, make_checkpoint, random_model, tiny_config

from transformers_codellama.serving.engines.base import EngineRequest
from transformers_codellama.serving.engines.sampling import SamplingParams
from transformers_codellama.serving.engines.speculation import PromptLookup
from transformers_codellama.serving.engines.torch_batch.engine import TorchEngine

NEW = 10


@pytest.fixture(scope="module")
def model():
    return random_model(tiny_config(), seed=5)


def prompts(lengths, seed=0):
    rng = random.Random(seed)
    # A repeated stretch, so that prompt lookup has drafts to offer the rows that may draft.
    return [[1] + [rng.randrange(3, 400) for _ in range(length)] * 2 for length in lengths]


def run(model, requests, **options):
    """Every request's (ids, stream) served together on one engine (speculation on unless told otherwise)."""

    async def main():
        engine = TorchEngine(model, speculation=options.pop("speculation", PromptLookup()), **options)
        engine.start()
        try:
            streams = [engine.submit(request) for request in requests]

            async def collect(stream):
                return [token async for token in stream]

            return list(zip(await asyncio.gather(*map(collect, streams)), streams, strict=True))
        finally:
            engine.stop()

    return asyncio.run(main())


def generated(model, prompt, **kwargs):
    output = model.generate(
        torch.tensor([prompt]),
        max_new_tokens=NEW,
        min_new_tokens=NEW,
        pad_token_id=0,
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
        **kwargs,
    )
    return output.sequences[0, len(prompt) :].tolist(), output


def test_greedy_repetition_penalty_equals_generate_under_load(model):
    first, second = prompts([6, 9])
    expected = [generated(model, prompt, do_sample=False, repetition_penalty=0.5)[0] for prompt in (first, second)]
    plain = generated(model, first, do_sample=False)[0]
    assert expected[0] != plain  # the penalty changes the tokens (below 1 it favours the prompt's tokens)
    penalised = SamplingParams(repetition_penalty=0.5)
    requests = [
        EngineRequest(first, NEW, (), penalised),
        EngineRequest(first, NEW, ()),
        EngineRequest(second, NEW, (), penalised),
    ]
    results = run(model, requests)
    assert [ids for ids, _ in results] == [expected[0], plain, expected[1]]


def test_seeded_sampling_with_repetition_penalty_equals_generate(model):
    [prompt] = prompts([7], seed=3)
    torch.manual_seed(9)
    expected, _ = generated(model, prompt, do_sample=True, temperature=0.9, top_k=0, repetition_penalty=0.5)
    sampling = SamplingParams(temperature=0.9, seed=9, repetition_penalty=0.5)
    [(ids, _)] = run(model, [EngineRequest(prompt, NEW, (), sampling)])
    assert ids == expected


def test_openai_penalties_equal_a_loop_written_from_their_definition(model):
    [prompt] = prompts([5], seed=4)
    frequency, presence = -0.3, -0.6  # negative: favours repeats, which a random model rarely makes
    ids = list(prompt)
    expected: list[int] = []
    for _ in range(NEW):
        logits = model(torch.tensor([ids])).logits[0, -1].detach()
        counts = torch.bincount(torch.tensor(expected, dtype=torch.long), minlength=logits.shape[0]).float()
        expected.append(int((logits - counts * frequency - (counts > 0).float() * presence).argmax()))
        ids.append(expected[-1])
    assert len(set(expected)) < len(expected)
    sampling = SamplingParams(frequency_penalty=frequency, presence_penalty=presence)
    [(got, _)] = run(model, [EngineRequest(prompt, NEW, (), sampling)])
    assert got == expected


def test_logprobs_are_the_chosen_distributions(model):
    first, second = prompts([6, 8], seed=6)
    tokens, output = generated(model, first, do_sample=False)
    torch.manual_seed(21)
    sampled, sampled_output = generated(model, second, do_sample=True, temperature=0.7, top_k=0)
    requests = [
        EngineRequest(first, NEW, (), logprobs=3, prompt_logprobs=True),
        EngineRequest(second, NEW, (), SamplingParams(temperature=0.7, seed=21), logprobs=0),
        EngineRequest(first, NEW, ()),
    ]
    (greedy_ids, greedy_stream), (sampled_ids, sampled_stream), (plain_ids, _) = run(model, requests)
    assert greedy_ids == plain_ids == tokens and sampled_ids == sampled
    # Greedy: the model's raw distribution (temperature 1), the chosen token first among the alternatives.
    for record, token, logits in zip(greedy_stream.token_logprobs, tokens, output.logits, strict=True):
        reference = torch.log_softmax(logits[0].float(), dim=-1)
        top = torch.topk(reference, 3)
        assert record.token == token
        assert record.logprob == pytest.approx(float(reference[token]), abs=1e-4)
        assert [token for token, _ in record.top] == top.indices.tolist()
        assert [value for _, value in record.top] == pytest.approx(top.values.tolist(), abs=1e-4)
    # Sampled: the distribution after the temperature, as `generate`'s processed scores.
    for record, token, scores in zip(sampled_stream.token_logprobs, sampled, sampled_output.scores, strict=True):
        assert record.top == ()
        assert record.logprob == pytest.approx(float(torch.log_softmax(scores[0], dim=-1)[token]), abs=1e-4)
    # The prompt: the model's own forward over it, log_softmax, each id after the ids before it.
    with torch.no_grad():
        reference = torch.log_softmax(model(torch.tensor([first])).logits[0, :-1].float(), dim=-1)
    expected = reference.gather(1, torch.tensor(first[1:])[:, None])[:, 0].tolist()
    assert greedy_stream.prompt_logprobs[0] is None
    assert greedy_stream.prompt_logprobs[1:] == pytest.approx(expected, abs=1e-4)


def test_stop_id_comes_with_its_logprob(model):
    [prompt] = prompts([6], seed=7)
    tokens, _ = generated(model, prompt, do_sample=False)
    [(ids, stream)] = run(model, [EngineRequest(prompt, NEW, (tokens[3],), logprobs=1)], speculation=None)
    assert ids == tokens[:3] and stream.stop_id == tokens[3]
    assert [record.token for record in stream.token_logprobs] == tokens[:4]


def test_bad_penalties_and_logprobs_are_refused(model):
    for sampling, message in [
        (SamplingParams(repetition_penalty=0.0), "repetition_penalty"),
        (SamplingParams(frequency_penalty=3.0), "frequency_penalty"),
    ]:
        with pytest.raises(ValueError, match=message):
            run(model, [EngineRequest([1, 5], 2, (), sampling)])
    with pytest.raises(ValueError, match="logprobs"):
        run(model, [EngineRequest([1, 5], 2, (), logprobs=-1)])
    for least in (-1, 3, True, 1.5):
        with pytest.raises(ValueError, match=r"min_new_tokens must be an integer in \[0, max_new_tokens \(2\)\]"):
            run(model, [EngineRequest([1, 5], 2, (2,), min_new_tokens=least)])


# ------------------------------------------------------------------------------------------------ min_new_tokens
def test_min_new_tokens_equals_generate_greedy_and_seeded(model):
    """The stop id a plain run ends on is held back for `min_new_tokens`, as `generate(min_new_tokens=...)` holds
    it back: greedy and seeded sampling, alone and in a batch with speculation on, with its log-probability -inf."""
    [prompt] = prompts([6], seed=7)
    tokens, _ = generated(model, prompt, do_sample=False)
    stop, least = tokens[3], 7

    def reference(**kwargs):
        output = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=NEW,
            min_new_tokens=least,
            eos_token_id=stop,
            pad_token_id=0,
            **kwargs,
        )
        ids = output[0, len(prompt) :].tolist()
        return ids[: ids.index(stop)] if stop in ids else ids

    expected = reference(do_sample=False)
    assert len(expected) >= least and expected[:3] == tokens[:3]  # it went on past the stop id
    torch.manual_seed(3)
    sampled = reference(do_sample=True, temperature=1.5, top_k=0)
    requests = [
        EngineRequest(prompt, NEW, (stop,), min_new_tokens=least, logprobs=2),
        EngineRequest(prompt, NEW, (stop,), SamplingParams(temperature=1.5, seed=3), min_new_tokens=least),
        EngineRequest(prompt, NEW, (stop,)),
        EngineRequest(prompt, NEW, (stop,), min_new_tokens=least),
    ]
    (held, stream), (drawn, _), (plain, _), (fast, _) = run(model, requests)
    assert held == fast == expected and drawn == sampled and plain == tokens[:3]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + expected[:least]])).logits[0, len(prompt) - 1 :]
    for position, record in enumerate(stream.token_logprobs[:least]):
        assert stop not in [token for token, _ in record.top]
        reference_row = torch.log_softmax(logits[position].float(), dim=-1)
        reference_row[stop] = -torch.inf
        assert record.logprob == pytest.approx(float(torch.log_softmax(reference_row, dim=-1)[record.token]), abs=1e-4)


# ------------------------------------------------------------------------------------------------ OpenAI, live
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-logprobs")
    base = make_checkpoint(root / "base", seed=1)
    instruct = make_checkpoint(root / "instruct", variant="instruct", seed=2)
    server, reference, tokenizer = serve(base, max_tokens_cap=64)
    chat_server, chat_reference, chat_tokenizer = serve(instruct, model_name="codellama-instruct")
    with server, chat_server:
        yield {
            "client": openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0),
            "chat": openai.OpenAI(base_url=chat_server.url + "/v1", api_key="none", max_retries=0),
            "url": server.url,
            "chat_url": chat_server.url,
            "model": reference,
            "tokenizer": tokenizer,
            "chat_model": chat_reference,
            "chat_tokenizer": chat_tokenizer,
        }


def forward_logprobs(model, prompt_ids, generated_ids):
    """The model's own log-softmax at each generated position (one forward over prompt + output)."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + generated_ids])).logits[0, len(prompt_ids) - 1 : -1]
    return torch.log_softmax(logits.float(), dim=-1)


PROMPT = "def fibonacci(n):\n"


def test_completion_logprobs_are_the_models_greedy_distribution(live):
    tokenizer = live["tokenizer"]
    response = live["client"].completions.create(
        model="codellama-test", prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3
    )
    choice = response.choices[0]
    prompt_ids = [tokenizer.bos_token_id, *tokenizer.encode(PROMPT, add_special_tokens=False)]
    generated_ids = greedy(live["model"], prompt_ids, stop=[tokenizer.eos_token_id], max_new_tokens=8)
    reference = forward_logprobs(live["model"], prompt_ids, generated_ids)
    lp = choice.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == response.usage.completion_tokens
    assert lp.token_logprobs == pytest.approx([float(reference[i].max()) for i in range(len(lp.tokens))], abs=1e-4)
    for top, row in zip(lp.top_logprobs, reference, strict=True):
        assert sorted(top.values(), reverse=True)[:3] == pytest.approx(torch.topk(row, 3).values.tolist(), abs=1e-4)
    assert lp.text_offset == [sum(len(token) for token in lp.tokens[:i]) for i in range(len(lp.tokens))]
    if not any(token.startswith("bytes:") for token in lp.tokens):
        assert "".join(lp.tokens) == choice.text


def test_streamed_logprobs_equal_the_response(live):
    client = live["client"]
    arguments = {"model": "codellama-test", "prompt": PROMPT, "max_tokens": 8, "temperature": 0, "logprobs": 2}
    whole = client.completions.create(**arguments).choices[0].logprobs
    tokens, values, offsets = [], [], []
    for chunk in client.completions.create(**arguments, stream=True):
        if chunk.choices and chunk.choices[0].logprobs is not None:
            tokens += chunk.choices[0].logprobs.tokens
            values += chunk.choices[0].logprobs.token_logprobs
            offsets += chunk.choices[0].logprobs.text_offset
    assert tokens == whole.tokens and offsets == whole.text_offset
    assert values == pytest.approx(whole.token_logprobs, abs=1e-6)


def test_best_of_returns_the_most_likely_of_its_choices(live):
    client = live["client"]
    arguments = {"model": "codellama-test", "prompt": PROMPT, "max_tokens": 6, "temperature": 1.0, "seed": 5}
    every = client.completions.create(**arguments, n=4, logprobs=0).choices
    sums = [sum(choice.logprobs.token_logprobs) for choice in every]
    best = client.completions.create(**arguments, n=2, best_of=4)
    ranked = sorted(range(4), key=lambda index: -sums[index])[:2]
    assert [choice.text for choice in best.choices] == [every[index].text for index in sorted(ranked)]
    assert [choice.index for choice in best.choices] == [0, 1] and best.choices[0].logprobs is None
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**arguments, best_of=2, stream=True)
    assert caught.value.param == "best_of"
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**arguments, n=3, best_of=2)
    assert caught.value.param == "best_of"


def test_penalties_over_http_equal_the_loop(live):
    model, tokenizer = live["model"], live["tokenizer"]
    ids = [tokenizer.bos_token_id, *tokenizer.encode(PROMPT, add_special_tokens=False)]
    expected: list[int] = []
    for _ in range(8):
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        counts = torch.bincount(torch.tensor(expected, dtype=torch.long), minlength=logits.shape[0]).float()
        expected.append(int((logits - counts * -0.5 - (counts > 0).float() * -1.0).argmax()))
        ids.append(expected[-1])
    response = live["client"].completions.create(
        model="codellama-test",
        prompt=PROMPT,
        max_tokens=8,
        temperature=0,
        frequency_penalty=-0.5,
        presence_penalty=-1.0,
        logprobs=0,
    )
    stop = expected.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in expected else len(expected)
    pieces = [piece.replace("\u2581", " ") for piece in tokenizer.convert_ids_to_tokens(expected[:stop])]
    assert response.choices[0].logprobs.tokens == pieces
    assert response.choices[0].text.strip() == tokenizer.decode(expected[:stop]).strip()


def test_chat_logprobs_non_streamed_and_streamed(live):
    client, tokenizer = live["chat"], live["chat_tokenizer"]
    arguments = {
        "model": "codellama-instruct",
        "messages": [{"role": "user", "content": "Write a loop."}],
        "max_tokens": 6,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": 2,
    }
    response = client.chat.completions.create(**arguments)
    content = response.choices[0].logprobs.content
    assert len(content) == response.usage.completion_tokens
    prompt_ids = tokenizer.apply_chat_template(arguments["messages"], tokenize=True, add_generation_prompt=True)
    if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "keys"):
        prompt_ids = prompt_ids["input_ids"]
    for entry in content:
        assert len(entry.top_logprobs) == 2 and entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
        assert bytes(entry.bytes).decode("utf-8", "replace") and isinstance(entry.token, str)
    generated_ids = greedy(live["chat_model"], list(prompt_ids), stop=[tokenizer.eos_token_id], max_new_tokens=6)
    reference = forward_logprobs(live["chat_model"], list(prompt_ids), generated_ids[: len(content)])
    chosen = [float(row.max()) for row in reference]
    assert [entry.logprob for entry in content][: len(chosen)] == pytest.approx(chosen, abs=1e-4)
    streamed = [
        entry.logprob
        for chunk in client.chat.completions.create(**arguments, stream=True)
        for choice in chunk.choices
        if choice.logprobs is not None and choice.logprobs.content
        for entry in choice.logprobs.content
    ]
    assert streamed == pytest.approx([entry.logprob for entry in content], abs=1e-6)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**{**arguments, "logprobs": False})
    assert caught.value.param == "top_logprobs"


# ------------------------------------------------------------------------------------------------ TGI, live
def test_tgi_details_prefill_top_tokens_and_repetition_penalty(live):
    model, tokenizer = live["model"], live["tokenizer"]
    client = InferenceClient(base_url=live["url"])
    prompt_ids = [tokenizer.bos_token_id, *tokenizer.encode(PROMPT, add_special_tokens=False)]
    output = model.generate(
        torch.tensor([prompt_ids]),
        do_sample=False,
        repetition_penalty=0.5,
        max_new_tokens=8,
        pad_token_id=0,
        return_dict_in_generate=True,
        output_scores=True,
    )
    expected = output.sequences[0, len(prompt_ids) :].tolist()
    response = client.text_generation(
        PROMPT,
        max_new_tokens=8,
        details=True,
        decoder_input_details=True,
        top_n_tokens=2,
        repetition_penalty=0.5,
    )
    tokens = response.details.tokens
    cut = expected.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in expected else len(expected)
    assert [token.id for token in tokens] == expected[:cut]
    chosen = [float(torch.log_softmax(scores[0], dim=-1)[token]) for scores, token in zip(output.scores, expected)]
    assert [token.logprob for token in tokens] == pytest.approx(chosen[:cut], abs=1e-4)
    # huggingface_hub leaves `top_tokens` as the JSON it got.
    for top, row in zip(response.details.top_tokens, output.scores, strict=False):
        best = torch.topk(torch.log_softmax(row[0], dim=-1), 2)
        assert [token["id"] for token in top] == best.indices.tolist()
    with torch.no_grad():
        reference = torch.log_softmax(model(torch.tensor([prompt_ids])).logits[0, :-1].float(), dim=-1)
    prefill = response.details.prefill
    assert [token.id for token in prefill] == prompt_ids and prefill[0].logprob is None
    expected_prefill = reference.gather(1, torch.tensor(prompt_ids[1:])[:, None])[:, 0].tolist()
    assert [token.logprob for token in prefill[1:]] == pytest.approx(expected_prefill, abs=1e-4)
    streamed = list(client.text_generation(PROMPT, max_new_tokens=8, details=True, stream=True, repetition_penalty=0.5))
    assert [event.token.logprob for event in streamed][:cut] == pytest.approx(chosen[:cut], abs=1e-4)
    refused = httpx.post(
        live["url"] + "/generate_stream", json={"inputs": PROMPT, "parameters": {"decoder_input_details": True}}
    )
    assert refused.status_code == 422 and refused.json()["error_type"] == "validation"


# ------------------------------------------------------------------------------------------------ llama.cpp, live
def _pieces(tokenizer, ids):
    """Each id's bytes as llama.cpp writes a piece (`▁` a space, `<0xNN>` one byte)."""
    out = []
    for piece in tokenizer.convert_ids_to_tokens(ids):
        if len(piece) == 6 and piece.startswith("<0x"):
            out.append([int(piece[3:5], 16)])
        else:
            out.append(list(piece.replace("\u2581", " ").encode()))
    return out


def test_llamacpp_n_probs_are_the_models_greedy_distribution(live):
    tokenizer, url = live["tokenizer"], live["url"]
    body = {"prompt": PROMPT, "n_predict": 8, "temperature": 0, "n_probs": 3, "return_tokens": True}
    result = httpx.post(url + "/completion", json=body, timeout=60).json()
    prompt_ids = [tokenizer.bos_token_id, *tokenizer.encode(PROMPT, add_special_tokens=False)]
    generated_ids = greedy(live["model"], prompt_ids, stop=[tokenizer.eos_token_id], max_new_tokens=8)
    reference = forward_logprobs(live["model"], prompt_ids, generated_ids)
    entries = result["completion_probabilities"]
    assert [entry["id"] for entry in entries] == result["tokens"] == generated_ids[: len(entries)]
    assert len(entries) == result["tokens_predicted"]
    assert [entry["bytes"] for entry in entries] == _pieces(tokenizer, result["tokens"])
    for entry, row in zip(entries, reference, strict=False):
        assert set(entry) == {"id", "token", "bytes", "logprob", "top_logprobs"}
        assert entry["token"] == bytes(entry["bytes"]).decode("utf-8", "ignore")
        assert entry["logprob"] == pytest.approx(float(row[entry["id"]]), abs=1e-4)
        best = torch.topk(row, 3)
        assert [top["id"] for top in entry["top_logprobs"]] == best.indices.tolist()
        assert [top["logprob"] for top in entry["top_logprobs"]] == pytest.approx(best.values.tolist(), abs=1e-4)
        assert [top["bytes"] for top in entry["top_logprobs"]] == _pieces(tokenizer, best.indices.tolist())
    assert result["generation_settings"]["n_probs"] == 3
    # Streamed: one entry on each partial chunk, the same values; the final chunk carries none.
    with httpx.stream("POST", url + "/completion", json={**body, "stream": True}, timeout=60) as stream:
        events = [json.loads(line.removeprefix("data: ")) for line in stream.iter_lines() if line]
    streamed = [entry for event in events[:-1] for entry in event["completion_probabilities"]]
    assert all(len(event["completion_probabilities"]) == 1 for event in events[:-1])
    assert "completion_probabilities" not in events[-1] and events[-1]["stop"] is True
    assert [entry["id"] for entry in streamed] == [entry["id"] for entry in entries]
    assert [entry["logprob"] for entry in streamed] == pytest.approx([entry["logprob"] for entry in entries], abs=1e-6)
    # post_sampling_probs: the same distribution as probabilities.
    probs = httpx.post(url + "/completion", json={**body, "post_sampling_probs": True}, timeout=60).json()
    for entry, logprobs in zip(probs["completion_probabilities"], entries, strict=True):
        assert set(entry) == {"id", "token", "bytes", "prob", "top_probs"}
        assert entry["prob"] == pytest.approx(math.exp(logprobs["logprob"]), abs=1e-5)
        assert [top["prob"] for top in entry["top_probs"]] == pytest.approx(
            [math.exp(top["logprob"]) for top in logprobs["top_logprobs"]], abs=1e-5
        )
    assert "completion_probabilities" not in httpx.post(url + "/completion", json={**body, "n_probs": 0}).json()


def test_llamacpp_sampled_probs_are_the_kept_candidates(live):
    """Sampled with `top_k: 2`: the distribution sampled from is the softmax over the two best logits, so each
    token lists at most those two, whatever `n_probs` asks, and its probabilities are that softmax."""
    tokenizer, url = live["tokenizer"], live["url"]
    body = {"prompt": PROMPT, "n_predict": 6, "temperature": 1.0, "top_k": 2, "top_p": 1.0, "seed": 11}
    result = httpx.post(
        url + "/completion", json={**body, "n_probs": 5, "post_sampling_probs": True, "return_tokens": True}
    ).json()
    prompt_ids = [tokenizer.bos_token_id, *tokenizer.encode(PROMPT, add_special_tokens=False)]
    reference = forward_logprobs(live["model"], prompt_ids, result["tokens"])
    for entry, row in zip(result["completion_probabilities"], reference, strict=True):
        best = torch.topk(row, 2)
        kept = torch.softmax(best.values, dim=-1)
        assert [top["id"] for top in entry["top_probs"]] == best.indices.tolist()
        assert [top["prob"] for top in entry["top_probs"]] == pytest.approx(kept.tolist(), abs=1e-4)
        assert entry["id"] in best.indices.tolist()
    infill = httpx.post(
        url + "/infill", json={"input_prefix": PROMPT, "input_suffix": "\n", "n_predict": 4, "n_probs": 1}
    ).json()
    assert len(infill["completion_probabilities"]) == infill["tokens_predicted"]


@pytest.mark.parametrize("value", [-1, "3", 1.5, True])
def test_llamacpp_bad_n_probs_is_a_400_naming_it(live, value):
    for path, body in (("/completion", {"prompt": "x"}), ("/infill", {"input_prefix": "", "input_suffix": ""})):
        response = httpx.post(live["url"] + path, json={**body, "n_probs": value})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "n_probs" in error["message"]
        assert "\n" not in error["message"]


# ------------------------------------------------------------------------------------------------ Ollama, live
def test_ollama_generate_logprobs_non_streamed_and_streamed(live):
    tokenizer = live["tokenizer"]
    client = ollama.Client(host=live["url"])
    arguments = {
        "model": "codellama-test",
        "prompt": PROMPT,
        "raw": True,
        "options": {"temperature": 0, "num_predict": 8},
        "logprobs": True,
        "top_logprobs": 3,
    }
    response = client.generate(**arguments)
    prompt_ids = [tokenizer.bos_token_id, *tokenizer.encode(PROMPT, add_special_tokens=False)]
    generated_ids = greedy(live["model"], prompt_ids, stop=[tokenizer.eos_token_id], max_new_tokens=8)
    reference = forward_logprobs(live["model"], prompt_ids, generated_ids)
    entries = response.logprobs
    assert len(entries) == response.eval_count
    pieces = [bytes(piece).decode("utf-8", "replace") for piece in _pieces(tokenizer, generated_ids)]
    assert [entry.token for entry in entries] == pieces[: len(entries)]
    for entry, row, token in zip(entries, reference, generated_ids, strict=False):
        assert entry.logprob == pytest.approx(float(row[token]), abs=1e-4)
        best = torch.topk(row, 3)
        assert [top.logprob for top in entry.top_logprobs] == pytest.approx(best.values.tolist(), abs=1e-4)
        expected = [bytes(piece).decode("utf-8", "replace") for piece in _pieces(tokenizer, best.indices.tolist())]
        assert [top.token for top in entry.top_logprobs] == expected
    streamed = [entry for chunk in client.generate(**arguments, stream=True) for entry in chunk.logprobs or []]
    assert [entry.token for entry in streamed] == [entry.token for entry in entries]
    assert [entry.logprob for entry in streamed] == pytest.approx([entry.logprob for entry in entries], abs=1e-6)
    # The `ollama` package's models keep `token`, `logprob`, `top_logprobs`; Ollama's `bytes` is on the wire.
    wire = httpx.post(live["url"] + "/api/generate", json={**arguments, "stream": False}, timeout=60).json()
    for entry, piece in zip(wire["logprobs"], _pieces(tokenizer, generated_ids), strict=False):
        assert entry["bytes"] == piece and set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
    plain = httpx.post(
        live["url"] + "/api/generate", json={**arguments, "stream": False, "top_logprobs": 0}, timeout=60
    ).json()
    assert all("top_logprobs" not in entry for entry in plain["logprobs"])
    unasked = httpx.post(
        live["url"] + "/api/generate", json={**arguments, "stream": False, "logprobs": False}, timeout=60
    ).json()
    assert "logprobs" not in unasked  # top_logprobs alone asks for nothing, as in Ollama


def test_ollama_chat_logprobs_non_streamed_and_streamed(live):
    tokenizer = live["chat_tokenizer"]
    client = ollama.Client(host=live["chat_url"])
    messages = [{"role": "user", "content": "Write a loop."}]
    arguments = {
        "model": "codellama-instruct",
        "messages": messages,
        "options": {"temperature": 0, "num_predict": 6},
        "logprobs": True,
        "top_logprobs": 2,
    }
    response = client.chat(**arguments)
    prompt_ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "keys"):
        prompt_ids = prompt_ids["input_ids"]
    generated_ids = greedy(live["chat_model"], list(prompt_ids), stop=[tokenizer.eos_token_id], max_new_tokens=6)
    reference = forward_logprobs(live["chat_model"], list(prompt_ids), generated_ids)
    assert len(response.logprobs) == response.eval_count
    for entry, row, token in zip(response.logprobs, reference, generated_ids, strict=False):
        assert entry.logprob == pytest.approx(float(row[token]), abs=1e-4)
        assert len(entry.top_logprobs) == 2 and entry.top_logprobs[0].logprob == pytest.approx(float(row.max()))
    streamed = [entry.logprob for chunk in client.chat(**arguments, stream=True) for entry in chunk.logprobs or []]
    assert streamed == pytest.approx([entry.logprob for entry in response.logprobs], abs=1e-6)


@pytest.mark.parametrize("top", [21, -1])
def test_ollama_top_logprobs_out_of_range_is_ollamas_400(live, top):
    client = ollama.Client(host=live["url"])
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="codellama-test", prompt="x", logprobs=True, top_logprobs=top)
    assert caught.value.status_code == 400 and caught.value.error == "top_logprobs must be between 0 and 20"
    response = httpx.post(
        live["url"] + "/api/chat",
        json={"model": "codellama-test", "messages": [{"role": "user", "content": "x"}], "top_logprobs": top},
    )
    assert response.status_code == 400 and response.json() == {"error": "top_logprobs must be between 0 and 20"}


def test_openai_alternatives_outside_the_nucleus_are_left_out(live):
    """A nucleus of one token (`top_p` tiny) leaves the other alternatives at -inf, which JSON cannot carry: each
    token lists only itself, at log-probability 0, in completions and chat, streamed or not."""
    arguments = {"model": "codellama-test", "prompt": PROMPT, "max_tokens": 3, "temperature": 1.0, "top_p": 1e-6}
    choice = live["client"].completions.create(**arguments, logprobs=5).choices[0]
    assert choice.logprobs.token_logprobs == [0.0] * 3
    assert [list(top.values()) for top in choice.logprobs.top_logprobs] == [[0.0]] * 3
    streamed = [
        top
        for chunk in live["client"].completions.create(**arguments, logprobs=5, stream=True)
        if chunk.choices and chunk.choices[0].logprobs is not None
        for top in chunk.choices[0].logprobs.top_logprobs
    ]
    assert streamed == choice.logprobs.top_logprobs
    chat = live["chat"].chat.completions.create(
        model="codellama-instruct",
        messages=[{"role": "user", "content": "x"}],
        max_tokens=3,
        temperature=1.0,
        top_p=1e-6,
        logprobs=True,
        top_logprobs=5,
    )
    for entry in chat.choices[0].logprobs.content:
        assert entry.logprob == 0.0 and [top.logprob for top in entry.top_logprobs] == [0.0]
    # TGI's `top_tokens` too.
    details = httpx.post(
        live["url"] + "/generate",
        json={
            "inputs": PROMPT,
            "parameters": {"max_new_tokens": 3, "do_sample": True, "top_p": 1e-6, "details": True, "top_n_tokens": 5},
        },
    ).json()["details"]
    assert [[top["logprob"] for top in tops] for tops in details["top_tokens"]] == [[0.0]] * len(details["tokens"])
