"""llama.cpp `/infill` with requests shaped exactly as llama.vscode and llama.vim send them, and the infilling budget."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from live_server import load, serve
from tiny_checkpoints import MetaReference, greedy, make_checkpoint, random_model, save_checkpoint, tiny_config

SMALL_CONTEXT = 128
PREFIX_LINES = ["import os", "", "", "def walk(root):", '    """Yield every file under root."""']
SUFFIX_LINES = ["", "", "def main():", "    print(list(walk('.')))"]
CHUNK = "def helper(path):\n    return os.path.join(path, 'x')\n"


def llama_vscode_request(line_head: str = "    for ", line_tail: str = "", **fields: object) -> dict:
    """The body llama.vscode 0.0.63 posts to /infill (`createRequestPayload`), with `fields` changed."""
    body = {
        "id_slot": 0,
        "input_prefix": "\n".join(PREFIX_LINES) + "\n",
        "input_suffix": line_tail + "\n" + "\n".join(SUFFIX_LINES) + "\n",
        "input_extra": [{"text": CHUNK, "time": 1767000000, "filename": "helpers.py"}],
        "prompt": line_head,
        "n_predict": 128,
        "n_cmpl": 3,
        "top_k": 40,
        "top_p": 0.99,
        "samplers": ["top_k", "top_p", "infill"],
        "stream": False,
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 500,
        "n_indent": 4,
    }
    return {**body, **fields}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-infill")
    base = make_checkpoint(root / "base", seed=3)
    small = save_checkpoint(root / "small", random_model(tiny_config(max_position_embeddings=SMALL_CONTEXT), seed=4))
    server, _, _ = serve(base, max_tokens_cap=48)
    small_server, _, _ = serve(small)
    with server, small_server:
        yield {"url": server.url, "small": small_server.url, "reference": load(base)[0]}


@pytest.fixture(scope="module")
def meta():
    return MetaReference()


def _expected(setup, meta, body, max_new):
    # The documented layout: input_extra chunks ("--- {filename} ---" + text) before input_prefix + prompt.
    extra = "".join(f"--- {chunk['filename']} ---\n{chunk['text']}" for chunk in body["input_extra"])
    prefix = extra + body["input_prefix"] + body["prompt"]
    ids = greedy(
        setup["reference"],
        meta.infilling_ids(prefix, body["input_suffix"]),
        stop=[meta.eot, meta.eos],
        max_new_tokens=max_new,
    )
    return meta.decode_infilling(ids), ids


def test_llama_vscode_request_gets_an_array_with_what_it_reads(setup):
    warm_up = {
        "input_prefix": "",
        "input_suffix": "",
        "input_extra": [{"text": CHUNK, "time": 1767000000, "filename": "helpers.py"}],
        "prompt": "",
        "n_predict": 0,
        "samplers": [],
        "cache_prompt": True,
        "t_max_prompt_ms": 1,
        "t_max_predict_ms": 1,
    }
    ready = httpx.get(setup["url"] + "/health")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    warmed = httpx.post(setup["url"] + "/infill", json=warm_up, timeout=60)
    assert warmed.status_code == 200, warmed.text
    assert warmed.json()["content"] == "" and warmed.json()["tokens_predicted"] == 0
    response = httpx.post(setup["url"] + "/infill", json=llama_vscode_request(), timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()
    assert isinstance(results, list) and [result["index"] for result in results] == [0, 1, 2]
    for result in results:
        assert isinstance(result["content"], str) and result["stop"] is True
        assert result["generation_settings"]["n_ctx"] == 16384
        assert result["stop_type"] in ("eos", "limit", "word")
        assert set(result["timings"]) >= {"prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "cache_n"}
        assert result["truncated"] is False
    # The warm-up evaluated the extra context: the request reuses the state of the tokens they share.
    assert all(result["tokens_cached"] > 0 for result in results)


def test_greedy_middle_is_metas(setup, meta):
    body = llama_vscode_request(n_cmpl=1, temperature=0, n_predict=16, t_max_predict_ms=None)
    body.pop("t_max_predict_ms")
    expected, ids = _expected(setup, meta, body, 16)
    result = httpx.post(setup["url"] + "/infill", json=body, timeout=60).json()
    assert result["content"] == expected
    assert result["tokens_predicted"] == len(ids)
    assert result["tokens_evaluated"] == len(
        meta.infilling_ids(f"--- helpers.py ---\n{CHUNK}" + body["input_prefix"] + body["prompt"], body["input_suffix"])
    )
    assert result["stop_type"] == ("limit" if len(ids) == 16 else "eos")


def test_stream_and_response_fields(setup, meta):
    body = llama_vscode_request(n_cmpl=1, temperature=0, n_predict=16, stream=True)
    body.pop("t_max_predict_ms")
    expected, _ = _expected(setup, meta, body, 16)
    with httpx.stream("POST", setup["url"] + "/infill", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: ") :]) for line in response.iter_lines() if line.startswith("data: ")]
    assert all(not event["stop"] for event in events[:-1]) and events[-1]["stop"] is True
    assert "".join(event["content"] for event in events) == expected
    assert events[-1]["generation_settings"]["n_ctx"] == 16384
    fields = ["content", "timings/prompt_n", "timings/predicted_ms", "truncated", "tokens_cached"]  # llama.vim
    flat = httpx.post(
        setup["url"] + "/infill",
        json={**body, "stream": False, "response_fields": fields},
        timeout=60,
    ).json()
    assert sorted(flat) == sorted(fields) and flat["content"] == expected


def test_long_infilling_is_cut_to_the_budget_and_says_so(setup, meta):
    prefix = "".join(f"value_{i} = compute({i})\n" for i in range(80))
    suffix = "".join(f"print(value_{i})\n" for i in range(80))
    body = {"input_prefix": prefix, "input_suffix": suffix, "n_predict": 8, "temperature": 0}
    result = httpx.post(setup["small"] + "/infill", json=body, timeout=60).json()
    assert result["truncated"] is True
    assert result["tokens_evaluated"] + 8 <= SMALL_CONTEXT
    assert result["generation_settings"]["n_ctx"] == SMALL_CONTEXT
    client = openai.OpenAI(base_url=setup["small"] + "/v1", api_key="none", max_retries=0)
    response = client.completions.create(
        model="codellama-test", prompt=prefix, suffix=suffix, max_tokens=8, temperature=0
    )
    assert response.model_extra["truncated"] is True
    assert response.usage.prompt_tokens + 8 <= SMALL_CONTEXT
    with pytest.raises(openai.BadRequestError, match=f"maximum context length is {SMALL_CONTEXT} tokens") as caught:
        client.completions.create(model="codellama-test", prompt=prefix, max_tokens=8)
    assert caught.value.code == "context_length_exceeded"


def test_infill_refusals_in_llama_cpp_shape(setup):
    url = setup["url"] + "/infill"
    for body, field in [
        ({"input_suffix": ""}, "input_prefix"),
        ({"input_prefix": "", "input_suffix": "", "input_extra": [{}]}, "input_extra.0.text"),
        ({"input_prefix": "", "input_suffix": "", "input_extra": [{"filename": 123, "text": "x"}]}, "filename"),
        ({"input_prefix": "", "input_suffix": "", "n_predict": -5}, "n_predict"),
        ({"input_prefix": "", "input_suffix": "", "n_probs": -1}, "n_probs"),
        ({"input_prefix": "", "input_suffix": "", "n_cmpl": 100}, "n_cmpl"),
    ]:
        response = httpx.post(url, json=body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == 400 and error["type"] == "invalid_request_error" and field in error["message"]
