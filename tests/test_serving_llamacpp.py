"""llama.cpp's `/completion`, `/tokenize`, `/detokenize`, `/props`, and OpenAI prompts of token ids, over real HTTP
against Meta's layout on SentencePiece and Meta's greedy loop."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from live_server import load, serve
from tiny_checkpoints import MetaReference, greedy, make_checkpoint

MAX = 12
PREFIX, SUFFIX = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = make_checkpoint(tmp_path_factory.mktemp("serve-llamacpp") / "base", seed=8)
    server, _, _ = serve(base, max_tokens_cap=64)
    with server:
        yield {"url": server.url, "reference": load(base)[0]}


@pytest.fixture(scope="module")
def meta():
    return MetaReference()


def test_completion_of_text_template_and_ids(setup, meta):
    url = setup["url"] + "/completion"
    prompt_ids = meta.completion_ids(PREFIX)
    ids = greedy(setup["reference"], prompt_ids, stop=[meta.eos], max_new_tokens=MAX)
    expected = meta.decode(prompt_ids + ids)[len(meta.decode(prompt_ids)) :]
    body = httpx.post(url, json={"prompt": PREFIX, "n_predict": MAX, "temperature": 0, "cache_prompt": True}).json()
    assert body["content"] == expected and body["stop"] is True
    assert body["tokens_predicted"] == len(ids) and body["tokens_evaluated"] == len(prompt_ids)
    assert body["stop_type"] == ("limit" if len(ids) == MAX else "eos")
    assert body["generation_settings"]["n_ctx"] == 16384 and "prompt_n" in body["timings"]
    by_ids = httpx.post(url, json={"prompt": prompt_ids, "n_predict": MAX, "temperature": 0}).json()
    assert by_ids["content"] == expected
    # Tabby's llama.cpp/completion body with its Code Llama template: the middle in Meta's layout.
    middle_ids = greedy(
        setup["reference"], meta.infilling_ids(PREFIX, SUFFIX), stop=[meta.eot, meta.eos], max_new_tokens=MAX
    )
    tabby = {
        "seed": 0,
        "prompt": f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>",
        "n_predict": MAX,
        "temperature": 0,
        "stream": True,
        "penalty_last_n": 0,
        "presence_penalty": 0.0,
    }
    with httpx.stream("POST", url, json=tabby) as stream:
        events = [json.loads(line.removeprefix("data: ")) for line in stream.iter_lines() if line]
    assert "".join(event["content"] for event in events) == meta.decode_infilling(middle_ids)
    assert events[-1]["stop"] is True and all(not event["stop"] for event in events[:-1])
    # The middle's ids given back as a prompt infill too (they hold ▁<MID>).
    again = httpx.post(url, json={"prompt": meta.infilling_ids(PREFIX, SUFFIX), "n_predict": MAX, "temperature": 0})
    assert again.json()["content"] == meta.decode_infilling(middle_ids)


def test_completion_refusals(setup):
    url = setup["url"] + "/completion"
    for field, value in (("repeat_penalty", 1.1), ("mirostat", 2)):
        response = httpx.post(url, json={"prompt": "x", field: value})
        assert response.status_code == 400
        assert response.json()["error"]["message"] == f"{field} is not supported by this server"
    response = httpx.post(url, json={"prompt": [1, 99999]})
    assert response.status_code == 400 and "outside the vocabulary" in response.json()["error"]["message"]


def test_tokenize_detokenize_props(setup, meta):
    url = setup["url"]
    text = "def héllo():\n    return 1"
    tokens = httpx.post(url + "/tokenize", json={"content": text}).json()["tokens"]
    assert tokens == meta.sp.encode(text)
    assert httpx.post(url + "/tokenize", json={"content": text, "add_special": True}).json()["tokens"][0] == meta.bos
    pieces = httpx.post(url + "/tokenize", json={"content": text, "with_pieces": True}).json()["tokens"]
    assert [piece["id"] for piece in pieces] == tokens
    assert "".join(piece["piece"] for piece in pieces if isinstance(piece["piece"], str)).startswith(" def")
    assert httpx.post(url + "/detokenize", json={"tokens": tokens}).json()["content"] == " " + text
    props = httpx.get(url + "/props").json()
    assert props["default_generation_settings"]["n_ctx"] == 16384 and props["total_slots"] >= 1
    assert props["model_path"] == "codellama-test"


def test_openai_prompt_as_token_ids_and_echo(setup, meta):
    client = openai.OpenAI(base_url=setup["url"] + "/v1", api_key="none", max_retries=0)
    prompt_ids = meta.completion_ids(PREFIX)
    ids = greedy(setup["reference"], prompt_ids, stop=[meta.eos], max_new_tokens=MAX)
    expected = meta.decode(prompt_ids + ids)[len(meta.decode(prompt_ids)) :]
    one = client.completions.create(model="codellama-test", prompt=prompt_ids, max_tokens=MAX, temperature=0)
    assert one.choices[0].text == expected and one.usage.prompt_tokens == len(prompt_ids)
    two = client.completions.create(
        model="codellama-test", prompt=[prompt_ids, prompt_ids], max_tokens=MAX, temperature=0
    )
    assert [choice.text for choice in two.choices] == [expected, expected]
    echoed = client.completions.create(
        model="codellama-test", prompt=prompt_ids, max_tokens=MAX, temperature=0, echo=True
    )
    assert echoed.choices[0].text == meta.decode(prompt_ids) + expected
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model="codellama-test", prompt=PREFIX, suffix=SUFFIX, echo=True)
    assert refused.value.body["param"] == "echo"
