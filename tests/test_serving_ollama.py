"""Ollama's API through the real `ollama` client, and Mistral's FIM through the real `mistralai` client, against a
live server; greedy middles are checked against Meta's layout on SentencePiece and Meta's greedy loop."""

from __future__ import annotations

import httpx
import ollama
import pytest
from live_server import load, serve
from mistralai.client import Mistral
from mistralai.client.errors import SDKError
from tiny_checkpoints import MetaReference, greedy, make_checkpoint

MAX = 12
PREFIX, SUFFIX = 'def remove_non_ascii(s: str) -> str:\n    """ ', "\n    return result\n"
GREEDY = {"temperature": 0, "num_predict": MAX}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-ollama")
    base = make_checkpoint(root / "base", seed=6)
    instruct = make_checkpoint(root / "instruct", variant="instruct", seed=7)
    server, _, _ = serve(base, model_name="codellama:7b-code")
    chat_server, _, _ = serve(instruct, model_name="codellama:7b-instruct")
    with server, chat_server:
        yield {
            "url": server.url,
            "client": ollama.Client(host=server.url),
            "chat": ollama.Client(host=chat_server.url),
            "mistral": Mistral(api_key="none", server_url=server.url),
            "reference": load(base)[0],
            "instruct": load(instruct)[0],
        }


@pytest.fixture(scope="module")
def meta():
    return MetaReference()


def middle(setup, meta, prefix, suffix, max_new=MAX):
    ids = greedy(
        setup["reference"], meta.infilling_ids(prefix, suffix), stop=[meta.eot, meta.eos], max_new_tokens=max_new
    )
    return meta.decode_infilling(ids), ids


def continuation(model, meta, prompt_ids, max_new=MAX, stop=None):
    ids = greedy(model, prompt_ids, stop=stop or [meta.eos], max_new_tokens=max_new)
    return meta.decode(prompt_ids + ids)[len(meta.decode(prompt_ids)) :], ids


def test_generate_with_suffix_is_metas_middle(setup, meta):
    client = setup["client"]
    expected, ids = middle(setup, meta, PREFIX, SUFFIX)
    response = client.generate(model="codellama:7b-code", prompt=PREFIX, suffix=SUFFIX, options=GREEDY)
    assert response.response == expected and response.done
    assert response.done_reason == ("length" if len(ids) == MAX else "stop")
    assert response.prompt_eval_count == len(meta.infilling_ids(PREFIX, SUFFIX))
    assert response.eval_count == len(ids) and response.total_duration > 0
    parts = list(client.generate(model="codellama:7b-code", prompt=PREFIX, suffix=SUFFIX, options=GREEDY, stream=True))
    assert "".join(part.response for part in parts) == expected
    assert [part.done for part in parts].count(True) == 1 and parts[-1].done and parts[-1].response == ""
    assert parts[-1].eval_count == len(ids)
    # Unlike an empty suffix (plain completion, Ollama's quirk), Continue's "\n" gets a middle.
    newline = client.generate(model="codellama:7b-code", prompt=PREFIX, suffix="\n", options=GREEDY, keep_alive="5m")
    assert newline.response == middle(setup, meta, PREFIX, "\n")[0]


def test_empty_suffix_and_raw_complete_the_text(setup, meta):
    client = setup["client"]
    expected, _ = continuation(setup["reference"], meta, meta.completion_ids(PREFIX))
    for kwargs in ({"suffix": ""}, {"raw": True}, {}):
        assert client.generate(model="codellama:7b-code", prompt=PREFIX, options=GREEDY, **kwargs).response == expected
    # A raw editor template is read back into Meta's layout (twinny's extra space after <SUF> is the suffix's).
    twinny = client.generate(
        model="codellama:7b-code", prompt=f"<PRE>{PREFIX} <SUF> {SUFFIX} <MID>", raw=True, options=GREEDY
    )
    assert twinny.response == middle(setup, meta, PREFIX, " " + SUFFIX)[0]


def test_sampling_options_and_seed(setup):
    client = setup["client"]
    options = {"temperature": 0.9, "top_k": 20, "top_p": 0.9, "seed": 3, "num_predict": MAX, "stop": ["\n\n"]}
    first = client.generate(model="codellama:7b-code", prompt=PREFIX, suffix=SUFFIX, options=options)
    again = client.generate(model="codellama:7b-code", prompt=PREFIX, suffix=SUFFIX, options=options)
    assert first.response == again.response and "\n\n" not in first.response
    # A num_ctx smaller than the prompt is the context the prompt must fit.
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model="codellama:7b-code", prompt=PREFIX * 4, options={"num_ctx": 8, "num_predict": 2})
    assert refused.value.status_code == 400 and "maximum context length is 8 tokens" in refused.value.error


def test_refusals_are_ollamas_shape(setup):
    client = setup["client"]
    for options, field in (({"repeat_penalty": 1.1}, "options.repeat_penalty"), ({"mirostat": 2}, "options.mirostat")):
        with pytest.raises(ollama.ResponseError) as refused:
            client.generate(model="codellama:7b-code", prompt="x", options=options)
        assert refused.value.status_code == 400 and refused.value.error == f"{field} is not supported by this server"
    assert client.generate(model="codellama:7b-code", prompt="x", options={"repeat_penalty": 1.0, "num_predict": 1})
    with pytest.raises(ollama.ResponseError) as missing:
        client.generate(model="llama3", prompt="x")
    assert missing.value.status_code == 404
    response = httpx.post(
        setup["url"] + "/api/generate", json={"model": "codellama:7b-code", "prompt": "x", "images": ["a"]}
    )
    assert response.status_code == 400 and response.json() == {"error": "images is not supported by this server"}
    assert httpx.get(setup["url"] + "/api/nothing").json() == {"error": "no endpoint at /api/nothing"}


def test_models_show_ps_version(setup):
    client = setup["client"]
    [listed] = client.list().models
    assert listed.model == "codellama:7b-code" and listed.details.family == "llama"
    shown = client.show("codellama:7b-code")
    assert ".Suffix" in shown.template and "insert" in shown.capabilities
    assert shown.modelinfo["llama.context_length"] == 16384
    assert client.ps().models[0].context_length == 16384
    assert set(httpx.get(setup["url"] + "/api/version").json()) == {"version"}
    loaded = client.generate(model="codellama:7b-code", prompt="")
    assert loaded.done and loaded.done_reason == "load"


def test_chat_is_metas_chat_ids(setup, meta):
    messages = [{"role": "system", "content": "Answer with code."}, {"role": "user", "content": "Reverse a list."}]
    expected, _ = continuation(setup["instruct"], meta, meta.chat_ids(messages))
    reply = setup["chat"].chat(model="codellama:7b-instruct", messages=messages, options=GREEDY)
    assert reply.message.content == expected.removeprefix(" ") or reply.message.content == expected
    parts = list(setup["chat"].chat(model="codellama:7b-instruct", messages=messages, options=GREEDY, stream=True))
    assert "".join(part.message.content for part in parts) == reply.message.content and parts[-1].done
    generated = setup["chat"].generate(
        model="codellama:7b-instruct", prompt="Reverse a list.", system="Answer with code.", options=GREEDY
    )
    assert generated.response == reply.message.content
    with pytest.raises(ollama.ResponseError):
        setup["client"].chat(model="codellama:7b-code", messages=messages)


def test_mistral_fim_complete_and_stream(setup, meta):
    client = setup["mistral"]
    expected, ids = middle(setup, meta, PREFIX, SUFFIX)
    response = client.fim.complete(
        model="codellama:7b-code", prompt=PREFIX, suffix=SUFFIX, max_tokens=MAX, temperature=0
    )
    assert response.choices[0].message.content == expected
    assert response.choices[0].finish_reason == ("length" if len(ids) == MAX else "stop")
    assert response.usage.completion_tokens == len(ids)
    events = list(
        client.fim.stream(model="codellama:7b-code", prompt=PREFIX, suffix=SUFFIX, max_tokens=MAX, temperature=0)
    )
    assert "".join(event.data.choices[0].delta.content or "" for event in events) == expected
    assert events[-1].data.choices[0].finish_reason is not None
    seeded = {
        "model": "codellama:7b-code",
        "prompt": PREFIX,
        "suffix": SUFFIX,
        "max_tokens": MAX,
        "random_seed": 5,
        "temperature": 0.8,
    }
    assert (
        client.fim.complete(**seeded).choices[0].message.content
        == client.fim.complete(**seeded).choices[0].message.content
    )
    with pytest.raises(SDKError) as refused:
        client.fim.complete(model="codellama:7b-code", prompt=PREFIX, suffix=SUFFIX, max_tokens=4, min_tokens=5)
    assert refused.value.status_code == 400 and "min_tokens (5) must be at most max_tokens (4)" in refused.value.body
    assert (
        httpx.post(setup["url"] + "/v1/fim/completions", json={"model": "x", "prompt": "y"}).json()["error"]["code"]
        == "model_not_found"
    )


def test_mistral_min_tokens_is_generates_min_new_tokens(tmp_path, meta):
    """`min_tokens` holds back `▁<EOT>` and `</s>` as `generate(min_new_tokens=...)` does, on Meta's infilling ids.

    The model (a `transition_model`) ends every middle at once (`▁<MID>` -> `▁<EOT>`) and has `a` as its second
    choice after `▁<MID>`, then walks `a -> b -> c -> ▁<EOT>`: with `min_tokens: 3` the middle is `a b c`."""
    import torch
    from tiny_checkpoints import save_checkpoint, tiny_config, transition_model

    a, b, c = (meta.sp.piece_to_id(piece) for piece in ("▁alpha", "▁beta", "▁return"))
    assert meta.sp.unk_id() not in (a, b, c)
    mid = meta.sp.piece_to_id("▁<MID>")
    config = tiny_config(vocab_size=meta.sp.get_piece_size(), supports_infilling=True)
    model = transition_model(config, {mid: meta.eot, a: b, b: c, c: meta.eot})
    with torch.no_grad():
        model.lm_head.weight[a, 0] = 0.5  # axis 0 is `▁<MID>`'s: `a` second after it
    checkpoint = save_checkpoint(tmp_path / "held", model)
    ids = meta.infilling_ids(PREFIX, SUFFIX)
    output = model.generate(
        torch.tensor([ids]), do_sample=False, max_new_tokens=MAX, min_new_tokens=3, eos_token_id=[meta.eot, meta.eos]
    )
    assert output[0, len(ids) :].tolist() == [a, b, c, meta.eot]
    server, _, _ = serve(checkpoint, model_name="codellama:7b-code")
    with server:
        client = Mistral(api_key="none", server_url=server.url)
        arguments = {"model": "codellama:7b-code", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": MAX}
        plain = client.fim.complete(**arguments, temperature=0)
        assert plain.choices[0].message.content == "" and plain.usage.completion_tokens == 0
        response = client.fim.complete(**arguments, temperature=0, min_tokens=3)
        assert response.usage.completion_tokens == 3 and response.choices[0].finish_reason == "stop"
        assert response.choices[0].message.content == meta.decode_infilling([a, b, c])
        events = list(client.fim.stream(**arguments, temperature=0, min_tokens=3))
        assert "".join(event.data.choices[0].delta.content or "" for event in events) == meta.decode_infilling(
            [a, b, c]
        )


def test_mistral_penalties_are_openais(setup, meta):
    """`frequency_penalty`/`presence_penalty` on `/v1/fim/completions` (Continue's `fimStream` sends them; the
    `mistralai` client has no such arguments) follow OpenAI's definition over the middle's tokens: a greedy loop
    written from it, on Meta's infilling ids."""
    import torch

    frequency, presence = -0.4, -0.8  # negative: favours repeats, which a random model rarely makes by itself
    ids, middle_ids = list(meta.infilling_ids(PREFIX, SUFFIX)), []
    for _ in range(MAX):
        with torch.no_grad():
            logits = setup["reference"](torch.tensor([ids])).logits[0, -1]
        counts = torch.bincount(torch.tensor(middle_ids, dtype=torch.long), minlength=logits.shape[0]).float()
        token = int((logits - counts * frequency - (counts > 0).float() * presence).argmax())
        if token in (meta.eot, meta.eos):
            break
        middle_ids.append(token)
        ids.append(token)
    assert middle_ids != middle(setup, meta, PREFIX, SUFFIX)[1]  # the penalties change this middle
    body = {
        "model": "codellama:7b-code",
        "prompt": PREFIX,
        "suffix": SUFFIX,
        "max_tokens": MAX,
        "temperature": 0,
        "frequency_penalty": frequency,
        "presence_penalty": presence,
    }
    response = httpx.post(setup["url"] + "/v1/fim/completions", json=body, timeout=60).json()
    assert response["usage"]["completion_tokens"] == len(middle_ids)
    assert response["choices"][0]["message"]["content"] == meta.decode_infilling(middle_ids)
