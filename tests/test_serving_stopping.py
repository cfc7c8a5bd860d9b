"""Where generation stops, on every protocol: an infilled middle on `▁<EOT>`, a completion on `</s>` (not `▁<EOT>`).

The checkpoint is a transition model (tests/tiny_checkpoints.py): after `▁<MID>` it generates `▁x ▁= ▁<EOT>`, after
`▁import` it generates `▁os ▁<EOT> ▁sys </s>`, whatever came before, so the stops are certain.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from huggingface_hub import InferenceClient
from live_server import serve
from tiny_checkpoints import MetaReference, chain, make_checkpoint

PREFIX, SUFFIX = "def f():\n    ", "\n    return x\n"


@pytest.fixture(scope="module")
def meta():
    return MetaReference()


@pytest.fixture(scope="module")
def ids(meta):
    piece = meta.sp.piece_to_id
    return {"x": piece("▁x"), "eq": piece("▁="), "import": piece("▁import"), "os": piece("▁os"), "sys": piece("▁sys")}


@pytest.fixture(scope="module")
def url(tmp_path_factory, meta, ids):
    transitions = {
        **chain(meta.mid, ids["x"], ids["eq"], meta.eot),
        **chain(ids["import"], ids["os"], meta.eot, ids["sys"], meta.eos),
    }
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("serve-stop") / "chain", transitions=transitions)
    server, _, _ = serve(checkpoint)
    with server:
        yield server.url


def test_infilling_stops_on_eot_everywhere(url, meta, ids):
    middle = meta.decode_infilling([ids["x"], ids["eq"]])
    assert middle == " x ="
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    for kwargs in ({"prompt": PREFIX, "suffix": SUFFIX}, {"prompt": f"<PRE> {PREFIX} <SUF>{SUFFIX} <MID>"}):
        response = client.completions.create(model="codellama-test", max_tokens=20, temperature=0, **kwargs)
        assert (response.choices[0].text, response.choices[0].finish_reason) == (middle, "stop")
        assert response.usage.completion_tokens == 2
    infill = httpx.post(url + "/infill", json={"input_prefix": PREFIX, "input_suffix": SUFFIX, "temperature": 0}).json()
    assert (infill["content"], infill["stop_type"], infill["tokens_predicted"]) == (middle, "eos", 2)
    tgi = InferenceClient(base_url=url)
    details = tgi.text_generation(
        PREFIX + "<FILL_ME>" + SUFFIX, max_new_tokens=20, details=True, return_full_text=False
    )
    assert (details.generated_text, details.details.finish_reason) == (middle, "eos_token")
    body = {"inputs": PREFIX + "<FILL_ME>" + SUFFIX, "parameters": {"max_new_tokens": 20}}
    with httpx.stream("POST", url + "/generate_stream", json=body) as stream:
        events = [json.loads(line[len("data:") :]) for line in stream.iter_lines() if line.startswith("data:")]
    assert [event["token"]["id"] for event in events] == [ids["x"], ids["eq"], meta.eot]
    assert events[-1]["token"]["special"] is True and events[-1]["generated_text"] == middle


def test_completion_runs_past_eot_to_eos(url, meta, ids):
    prompt_ids = meta.completion_ids("import")
    generated = [ids["os"], meta.eot, ids["sys"]]
    expected = meta.decode(prompt_ids + generated)[len(meta.decode(prompt_ids)) :]
    client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    response = client.completions.create(model="codellama-test", prompt="import", max_tokens=20, temperature=0)
    assert (response.choices[0].text, response.choices[0].finish_reason) == (expected, "stop")
    assert expected == " os <EOT> sys" and response.usage.completion_tokens == 3  # Meta decodes ▁<EOT> as text here
    tgi = InferenceClient(base_url=url)
    result = tgi.text_generation("import", max_new_tokens=20, details=True, stop=[" sys"], return_full_text=False)
    assert (result.generated_text, result.details.finish_reason) == (" os <EOT>", "stop_sequence")


def test_llama_cpp_time_limit_ends_after_a_newline(tmp_path, meta, ids):
    from live_server import load, torch_app
    from starlette.testclient import TestClient

    newline = meta.sp.piece_to_id("<0x0A>")
    transitions = {**chain(meta.mid, ids["x"], newline, ids["sys"]), ids["sys"]: ids["sys"]}  # then sys forever
    model, tokenizer = load(make_checkpoint(tmp_path / "loop", transitions=transitions))
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "temperature": 0, "n_predict": 1000}
    with TestClient(torch_app(model, tokenizer, model_name="m")) as client:
        timed = client.post("/infill", json={**body, "t_max_predict_ms": 1}).json()
        assert timed["content"].startswith(" x\n") and timed["stop_type"] == "limit"
        assert 2 <= timed["tokens_predicted"] < 1000
        untimed = client.post("/infill", json={**body, "n_predict": 40}).json()
        assert untimed["tokens_predicted"] == 40 and untimed["content"] == " x\n" + " sys" * 38
