"""Each editor's request, replayed over real HTTP as its source sends it (SERVING.md §2, §4, §5.4, §6), gets Meta's
greedy middle: Meta's layout on SentencePiece and Meta's greedy loop over a second copy of the weights.

Sampling settings the editors send (e.g. temperature 0.2) are set to 0 here, so that the middle is the greedy one.
"""

from __future__ import annotations

import json

import httpx
import pytest
from live_server import load, serve
from tiny_checkpoints import MetaReference, greedy, make_checkpoint

MAX = 12
PREFIX, SUFFIX = "import os\n\ndef walk(root):\n    ", "\n\n\ndef main():\n    print(list(walk('.')))\n"
CODE_LLAMA_STOPS = ["<PRE>", "<SUF>", "<MID>", "<EOT>"]  # Continue's stop words for its Code Llama template


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = make_checkpoint(tmp_path_factory.mktemp("serve-editors") / "base", seed=9)
    server, _, _ = serve(base, model_name="codellama:7b-code")  # Continue wants `codellama` in the name
    with server:
        yield {"url": server.url, "reference": load(base)[0]}


@pytest.fixture(scope="module")
def meta():
    return MetaReference()


def middle(setup, meta, prefix=PREFIX, suffix=SUFFIX, stops=()):
    ids = greedy(setup["reference"], meta.infilling_ids(prefix, suffix), stop=[meta.eot, meta.eos], max_new_tokens=MAX)
    text = meta.decode_infilling(ids)
    for stop in stops:
        text = text.split(stop)[0]
    return text


def lines(url, body, *, sse=True):
    with httpx.stream("POST", url, json=body, timeout=60) as response:
        assert response.status_code == 200, response.read()
        found = [line for line in response.iter_lines() if line]
    return [json.loads(line.removeprefix("data:")) for line in found if not sse or line != "data: [DONE]"]


def test_continue_with_ollama(setup, meta):
    # Continue's Ollama provider supports FIM: prefix and suffix (an empty suffix sent as "\n"), raw, streamed.
    body = {
        "model": "codellama:7b-code",
        "prompt": PREFIX,
        "suffix": SUFFIX,
        "raw": True,
        "stream": True,
        "keep_alive": 1800,
        "options": {"temperature": 0, "top_p": 1, "num_predict": MAX, "num_ctx": 8192, "stop": CODE_LLAMA_STOPS},
    }
    parts = lines(setup["url"] + "/api/generate", body, sse=False)
    assert "".join(part["response"] for part in parts) == middle(setup, meta, stops=CODE_LLAMA_STOPS)
    assert parts[-1]["done"] is True


def test_continue_with_openai(setup, meta):
    # Continue's `openai` provider renders its template into `prompt` on the legacy completions endpoint.
    body = {
        "model": "codellama:7b-code",
        "prompt": f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>",
        "max_tokens": MAX,
        "temperature": 0,
        "top_p": 1,
        "frequency_penalty": 0,
        "presence_penalty": 0,
        "stop": CODE_LLAMA_STOPS,
        "stream": True,
    }
    chunks = lines(setup["url"] + "/v1/completions", body)
    assert "".join(chunk["choices"][0]["text"] for chunk in chunks) == middle(setup, meta, stops=CODE_LLAMA_STOPS)
    # Its `fimStream` (FIM-capable OpenAI-style providers) posts prefix and suffix to {apiBase}/fim/completions.
    fim = {**body, "prompt": PREFIX, "suffix": SUFFIX}
    chunks = lines(setup["url"] + "/v1/fim/completions", fim)
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == middle(setup, meta, stops=CODE_LLAMA_STOPS)


def test_llama_vscode(setup, meta):
    body = {
        "id_slot": 0,
        "input_prefix": PREFIX.rpartition("\n")[0] + "\n",
        "input_suffix": SUFFIX,
        "input_extra": [],
        "prompt": PREFIX.rpartition("\n")[2],
        "n_predict": MAX,
        "top_k": 40,
        "top_p": 0.99,
        "temperature": 0,
        "samplers": ["top_k", "top_p", "infill"],
        "stream": False,
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 500,
        "n_indent": 4,
    }
    response = httpx.post(setup["url"] + "/infill", json=body, timeout=60).json()
    assert response["content"] == middle(setup, meta) and response["generation_settings"]["n_ctx"] > 0


def test_llm_vscode(setup, meta):
    template = f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>"  # "<PRE> " + prefix + " <SUF>" + suffix + " <MID>"
    tgi = {"inputs": template, "parameters": {"max_new_tokens": MAX, "return_full_text": False}}
    response = httpx.post(setup["url"] + "/generate", json=tgi, timeout=60).json()
    assert response["generated_text"] == middle(setup, meta)
    # Its `ollama` backend: the same template in `prompt`, not raw, not streamed.
    ollama = {
        "model": "codellama:7b-code",
        "prompt": template,
        "stream": False,
        "options": {"num_predict": MAX, "temperature": 0, "top_p": 0.95},
    }
    response = httpx.post(setup["url"] + "/api/generate", json=ollama, timeout=60).json()
    assert response["response"] == middle(setup, meta)


def test_twinny(setup, meta):
    # twinny's Llama template through Ollama: "<PRE>{context} \n{header}{prefix} <SUF> {suffix} <MID>" (no context
    # or header here); the space after <PRE> is dropped and the one after <SUF> is the suffix's own first character.
    prompt = f"<PRE> \n{PREFIX} <SUF> {SUFFIX} <MID>"
    body = {
        "model": "codellama:7b-code",
        "prompt": prompt,
        "stream": True,
        "keep_alive": "5m",
        "options": {"temperature": 0, "num_predict": MAX},
    }
    parts = lines(setup["url"] + "/api/generate", body, sse=False)
    assert "".join(part["response"] for part in parts) == middle(setup, meta, "\n" + PREFIX, " " + SUFFIX)


def test_tabby(setup, meta):
    # `llama.cpp/completion` kind: its prompt_template rendered client-side, posted to /completion, streamed.
    body = {
        "seed": 0,
        "prompt": f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>",
        "n_predict": MAX,
        "temperature": 0,
        "stream": True,
        "penalty_last_n": 0,
        "presence_penalty": 0.0,
    }
    events = lines(setup["url"] + "/completion", body)
    assert "".join(event["content"] for event in events) == middle(setup, meta) and events[-1]["stop"] is True
    # `openai/completion` kind: prefix as `prompt` and `suffix`; it stops at the first chunk with a finish_reason.
    openai_body = {
        "model": "codellama:7b-code",
        "prompt": PREFIX,
        "suffix": SUFFIX,
        "max_tokens": MAX,
        "temperature": 0,
        "stream": True,
        "presence_penalty": 0,
    }
    chunks = lines(setup["url"] + "/v1/completions", openai_body)
    text = ""
    for chunk in chunks:
        text += chunk["choices"][0]["text"]
        if chunk["choices"][0]["finish_reason"] is not None:
            break
    assert text == middle(setup, meta)
