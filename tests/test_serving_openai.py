"""OpenAI completions and chat through the real `openai` client against a live server on a tiny checkpoint.

Greedy outputs are checked against an independent reference: Meta's layouts on SentencePiece itself and Meta's plain
greedy loop over a second copy of the weights (tests/tiny_checkpoints.py).
"""

from __future__ import annotations

import httpx
import openai
import pytest
from live_server import load, serve
from real_data import code_cuts
from tiny_checkpoints import MetaReference, greedy, make_checkpoint

MAX = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-openai")
    base = make_checkpoint(root / "base", seed=1)
    instruct = make_checkpoint(root / "instruct", variant="instruct", seed=2)
    server, _, _ = serve(base, max_tokens_cap=64)
    chat_server, _, _ = serve(instruct, model_name="codellama-instruct")
    with server, chat_server:
        yield {
            "client": openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0),
            "chat": openai.OpenAI(base_url=chat_server.url + "/v1", api_key="none", max_retries=0),
            "url": server.url,
            "reference": load(base)[0],
            "instruct": load(instruct)[0],
        }


@pytest.fixture(scope="module")
def meta():
    return MetaReference()


@pytest.fixture(scope="module")
def cuts():
    return [(p, s) for p, s in code_cuts(40, seed=21, max_len=300) if "<" not in p + s][:4]


def _middle(setup, meta, prefix, suffix, max_new=MAX):
    ids = greedy(
        setup["reference"], meta.infilling_ids(prefix, suffix), stop=[meta.eot, meta.eos], max_new_tokens=max_new
    )
    return meta.decode_infilling(ids), ids


def test_suffix_is_metas_infilling_and_text_is_the_middle(setup, meta, cuts):
    client = setup["client"]
    for prefix, suffix in cuts:
        response = client.completions.create(
            model="codellama-test", prompt=prefix, suffix=suffix, max_tokens=MAX, temperature=0
        )
        expected, ids = _middle(setup, meta, prefix, suffix)
        choice = response.choices[0]
        assert choice.text == expected
        assert choice.finish_reason == ("length" if len(ids) == MAX else "stop")
        assert response.usage.prompt_tokens == len(meta.infilling_ids(prefix, suffix))
        assert response.usage.completion_tokens == len(ids)


def test_stream_equals_the_non_streamed_text(setup, meta, cuts):
    client = setup["client"]
    prefix, suffix = cuts[0]
    chunks = list(
        client.completions.create(
            model="codellama-test",
            prompt=prefix,
            suffix=suffix,
            max_tokens=MAX,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert text == _middle(setup, meta, prefix, suffix)[0]
    finals = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert len(finals) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_editor_template_and_empty_suffix_are_infilling(setup, meta, cuts):
    client = setup["client"]
    for prefix, suffix in cuts[:2]:
        continue_prompt = f"<PRE> {prefix} <SUF>{suffix} <MID>"  # what Continue sends, with its stop words
        response = client.completions.create(
            model="codellama-test",
            prompt=continue_prompt,
            max_tokens=MAX,
            temperature=0,
            stop=["<PRE>", "<SUF>", "<MID>", "<EOT>"],
        )
        expected = _middle(setup, meta, prefix, suffix)[0]
        for stop in ["<PRE>", "<SUF>", "<MID>", "<EOT>"]:
            expected = expected.split(stop)[0]
        assert response.choices[0].text == expected
    prefix = cuts[0][0]
    empty = client.completions.create(model="codellama-test", prompt=prefix, suffix="", max_tokens=MAX, temperature=0)
    assert empty.choices[0].text == _middle(setup, meta, prefix, "")[0]
    assert empty.usage.prompt_tokens == len(meta.infilling_ids(prefix, ""))


def test_completion_without_suffix_continues_the_prompt(setup, meta):
    client = setup["client"]
    prompt = "import os\n\ndef list_files(path):\n    "
    prompt_ids = meta.completion_ids(prompt)
    ids = greedy(setup["reference"], prompt_ids, stop=[meta.eos], max_new_tokens=MAX)
    whole = meta.decode(prompt_ids + ids)
    expected = whole[len(meta.decode(prompt_ids)) :]
    response = client.completions.create(model="codellama-test", prompt=prompt, max_tokens=MAX, temperature=0)
    assert response.choices[0].text == expected
    echoed = client.completions.create(model="codellama-test", prompt=prompt, max_tokens=MAX, temperature=0, echo=True)
    assert echoed.choices[0].text == prompt + expected
    streamed = client.completions.create(
        model="codellama-test", prompt=prompt, max_tokens=MAX, temperature=0, stream=True
    )
    assert "".join(chunk.choices[0].text for chunk in streamed) == expected


def test_n_seed_stop_and_max_tokens(setup, meta, cuts):
    client = setup["client"]
    prefix, suffix = cuts[1]
    kwargs = {"model": "codellama-test", "prompt": prefix, "suffix": suffix, "max_tokens": MAX}
    greedy_pair = client.completions.create(**kwargs, temperature=0, n=2)
    assert [choice.index for choice in greedy_pair.choices] == [0, 1]
    assert greedy_pair.choices[0].text == greedy_pair.choices[1].text
    texts = ["", ""]
    for chunk in client.completions.create(**kwargs, temperature=0, n=2, stream=True):
        texts[chunk.choices[0].index] += chunk.choices[0].text
    assert texts == [greedy_pair.choices[0].text] * 2
    first = client.completions.create(**kwargs, temperature=1.0, seed=123)
    again = client.completions.create(**kwargs, temperature=1.0, seed=123)
    assert first.choices[0].text == again.choices[0].text
    expected = _middle(setup, meta, prefix, suffix)[0]
    stop = expected[len(expected) // 2 : len(expected) // 2 + 2]
    if stop.strip():
        cut = client.completions.create(**kwargs, temperature=0, stop=[stop])
        assert cut.choices[0].text == expected.split(stop)[0] and cut.choices[0].finish_reason == "stop"
    capped = client.completions.create(**{**kwargs, "max_tokens": 10_000}, temperature=0)  # lowered to the cap (64)
    assert capped.usage.completion_tokens <= 64
    nothing = client.completions.create(**{**kwargs, "max_tokens": 0}, temperature=0)
    assert nothing.choices[0].text == "" and nothing.choices[0].finish_reason == "length"


def test_models_and_refusals(setup):
    client = setup["client"]
    assert [model.id for model in client.models.list().data] == ["codellama-test"]
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="gpt-4", prompt="x", max_tokens=1)
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="codellama-test", prompt="x", max_tokens=1, logit_bias={"50": 10})
    assert caught.value.param == "logit_bias" and "logit_bias" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="codellama-test", prompt="x", extra_body={"top_k": 5})
    assert caught.value.param == "top_k"
    with pytest.raises(openai.BadRequestError, match="chat template") as caught:
        client.chat.completions.create(model="codellama-test", messages=[{"role": "user", "content": "hi"}])
    ok = httpx.post(setup["url"] + "/v1/completions", json={"model": "codellama-test", "prompt": "x", "max_tokens": 1})
    assert ok.status_code == 200


def test_chat_is_metas_chat_completion(setup, meta):
    client = setup["chat"]
    messages = [{"role": "system", "content": "Answer in code."}, {"role": "user", "content": "Reverse a list."}]
    ids = greedy(setup["instruct"], meta.chat_ids(messages), stop=[meta.eos], max_new_tokens=MAX)
    expected = meta.decode(ids)  # Meta's chat_completion decodes the answer alone
    response = client.chat.completions.create(
        model="codellama-instruct", messages=messages, max_tokens=MAX, temperature=0
    )
    assert response.choices[0].message.content == expected
    assert response.choices[0].message.role == "assistant"
    assert response.usage.prompt_tokens == len(meta.chat_ids(messages))
    chunks = list(
        client.chat.completions.create(
            model="codellama-instruct", messages=messages, max_tokens=MAX, temperature=0, stream=True
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == expected
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
