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
    # continuedev/continue core/llm/llms/Ollama.ts@d0a3c0b626b5bebc3bef4742eec05a0242be0bab: it asks /api/show for
    # the model (`name`) and fills in the middle itself only when the template holds `.Suffix`.
    show = httpx.post(setup["url"] + "/api/show", json={"name": "codellama:7b-code"}, timeout=60).json()
    assert ".Suffix" in show["template"]
    # `_streamFim` -> `_getGenerateOptions(options, prefix, suffix)`: prefix and suffix (an empty suffix sent as "\n",
    # core/autocomplete/templating/index.ts), `raw: options.raw` and `stream: options.stream` both unset for
    # autocomplete (so absent from the JSON; Ollama streams by default), keep_alive 1800; options from
    # `_getModelFileParams` (temperature 0.01 from CompletionProvider.ts, unset ones such as top_p dropped).
    body = {
        "model": "codellama:7b-code",
        "prompt": PREFIX,
        "suffix": SUFFIX,
        "options": {"temperature": 0, "num_predict": MAX, "stop": CODE_LLAMA_STOPS, "num_ctx": 8192},
        "keep_alive": 1800,
    }
    parts = lines(setup["url"] + "/api/generate", body, sse=False)
    assert "".join(part["response"] for part in parts) == middle(setup, meta, stops=CODE_LLAMA_STOPS)
    assert parts[-1]["done"] is True
    # Without `.Suffix` (core/autocomplete/generation/CompletionStreamer.ts): `streamComplete` with `raw: true`, its
    # Code Llama template rendered into `prompt` and no `suffix`.
    raw = {**body, "prompt": f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>", "raw": True}
    del raw["suffix"]
    parts = lines(setup["url"] + "/api/generate", raw, sse=False)
    assert "".join(part["response"] for part in parts) == middle(setup, meta, stops=CODE_LLAMA_STOPS)


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
    # ggml-org/llama.vscode src/llama-server.ts@3938fb3568b98e3ddfcf2ce3dd52d9570552b579 `createRequestPayload`:
    # n_cmpl is max_parallel_completions (default 3, so the answer is an array), then `defaultRequestParams`; it
    # sends no temperature (0 is added here for the greedy middle) and `model` only when one is configured.
    body = {
        "id_slot": 0,
        "input_prefix": PREFIX.rpartition("\n")[0] + "\n",
        "input_suffix": SUFFIX,
        "input_extra": [],
        "prompt": PREFIX.rpartition("\n")[2],
        "n_predict": MAX,
        "n_cmpl": 3,
        "top_k": 40,
        "top_p": 0.99,
        "stream": False,
        "samplers": ["top_k", "top_p", "infill"],
        "cache_prompt": True,
        "n_indent": 4,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 500,
        "temperature": 0,
    }
    responses = httpx.post(setup["url"] + "/infill", json=body, timeout=60).json()
    assert len(responses) == 3
    for response in responses:
        assert response["content"] == middle(setup, meta) and response["generation_settings"]["n_ctx"] > 0
    # Its warm-up (n_predict 0, no samplers) before the user asks.
    warm = {key: body[key] for key in ("id_slot", "input_prefix", "input_suffix", "input_extra", "prompt")}
    warm |= {"n_predict": 0, "samplers": [], "cache_prompt": True, "t_max_prompt_ms": 500, "t_max_predict_ms": 1}
    assert httpx.post(setup["url"] + "/infill", json=warm, timeout=60).json()["content"] == ""


def test_llm_vscode(setup, meta):
    # huggingface/llm-ls crates/llm-ls/src/backend.rs `build_body` and main.rs `build_prompt`/`build_url`
    # @1c52b94f30fa8293741d8b68c7fa48074b7f6589; the request bodies are llm-vscode's config templates
    # (huggingface/llm-vscode src/configTemplates.ts@06612965042c6c51888b42fffa86ccc8ad7be572), whose temperature 0.2
    # and top_p 0.95 are left out here (TGI refuses temperature 0) or set to 0.
    template = f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>"  # "<PRE> " + prefix + " <SUF>" + suffix + " <MID>"
    tgi = {"inputs": template, "parameters": {"max_new_tokens": MAX, "return_full_text": False}}
    response = httpx.post(setup["url"] + "/generate", json=tgi, timeout=60).json()
    assert response["generated_text"] == middle(setup, meta)
    # Its `ollama` backend: the same template in `prompt`, `model` and `stream: false` added, no `raw`.
    ollama = {
        "model": "codellama:7b-code",
        "prompt": template,
        "stream": False,
        "options": {"num_predict": MAX, "temperature": 0, "top_p": 0.95},
    }
    response = httpx.post(setup["url"] + "/api/generate", json=ollama, timeout=60).json()
    assert response["response"] == middle(setup, meta)


def test_twinny(setup, meta):
    # twinnydotdev/twinny@193d14c0db4645d6483a38926fc997f9d07fe9ff: src/extension/fim-templates.ts's Llama template
    # (`codellama` and `llama`) "<PRE>{fileContext} \n{heading}{prefix} <SUF> {suffix} <MID>", the heading from
    # src/extension/providers/completion.ts `getPromptHeader` (here a Python file, file context off as by default);
    # src/extension/provider-options.ts's Ollama body: no `raw`, no `stop`, keep_alive "5m", temperature 0.2 (0 here)
    # and num_predict (numPredictFim). The space after <PRE> is dropped; the one after <SUF> is the suffix's own.
    heading = "\n''' Language: Python (python) '''\n''' File uri: file:///home/me/walk.py (python) '''\n"
    prompt = f"<PRE> \n{heading}{PREFIX} <SUF> {SUFFIX} <MID>"
    body = {
        "model": "codellama:7b-code",
        "prompt": prompt,
        "stream": True,
        "keep_alive": "5m",
        "options": {"temperature": 0, "num_predict": MAX},
    }
    parts = lines(setup["url"] + "/api/generate", body, sse=False)
    assert "".join(part["response"] for part in parts) == middle(setup, meta, "\n" + heading + PREFIX, " " + SUFFIX)


def test_tabby(setup, meta):
    # TabbyML/tabby crates/http-api-bindings/src/completion/{llama,openai,mod}.rs@21b29048d7bcf6b94f9f482f2d0fd05efadfd19f
    # (presence_penalty 0.0 by default for code, crates/tabby-inference/src/completion.rs; seed random, 0 here;
    # temperature 0.1 by default, crates/tabby-inference/src/code.rs, 0 here).
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
    # `openai/completion` kind: Tabby's own template "{prefix}<|FIM|>{suffix}" (prompt_template is ignored) split into
    # `prompt` and `suffix`, posted to {api_endpoint}/completions; it stops at the first chunk with a finish_reason.
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
