"""TGI routes through the real `huggingface_hub.InferenceClient` and llm-vscode-shaped requests, against the pipeline."""

from __future__ import annotations

import json

import httpx
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import ValidationError
from live_server import load, serve
from tiny_checkpoints import MetaReference, make_checkpoint
from transformers import pipeline

MAX = 12
FILL = 'def remove_non_ascii(s: str) -> str:\n    """ <FILL_ME>\n    return result\n'


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = make_checkpoint(tmp_path_factory.mktemp("serve-tgi") / "base", seed=5)
    server, _, _ = serve(base)
    model, tokenizer = load(base)
    with server:
        yield {
            "url": server.url,
            "client": InferenceClient(base_url=server.url),
            "pipeline": pipeline("text-generation", model=model, tokenizer=tokenizer),
        }


def _pipeline(setup, prompt, **kwargs):
    return setup["pipeline"](prompt, max_new_tokens=MAX, do_sample=False, **kwargs)[0]["generated_text"]


def test_inference_client_infills_like_the_pipeline(setup):
    client = setup["client"]
    middle = _pipeline(setup, FILL, return_full_text=False)
    assert client.text_generation(FILL, max_new_tokens=MAX, return_full_text=False) == middle
    # On `/` the full text is TGI's default: for <FILL_ME>, the filled code, as the pipeline's default.
    assert client.text_generation(FILL, max_new_tokens=MAX) == _pipeline(setup, FILL)
    streamed = list(client.text_generation(FILL, max_new_tokens=MAX, stream=True, return_full_text=False))
    assert "".join(streamed) == middle
    details = client.text_generation(FILL, max_new_tokens=MAX, details=True, return_full_text=False)
    assert details.generated_text == middle
    assert details.details.finish_reason in ("length", "eos_token")
    events = list(client.text_generation(FILL, max_new_tokens=MAX, stream=True, details=True, return_full_text=False))
    assert events[-1].generated_text == middle and all(event.generated_text is None for event in events[:-1])
    assert events[-1].details.generated_tokens == details.details.generated_tokens


def test_completion_like_the_pipeline(setup):
    prompt = "def fibonacci(n):\n"
    full = _pipeline(setup, prompt)
    assert setup["client"].text_generation(prompt, max_new_tokens=MAX, return_full_text=False) == full[len(prompt) :]


def test_llm_vscode_generate_with_its_template(setup):
    meta = MetaReference()
    prefix, suffix = 'def remove_non_ascii(s: str) -> str:\n    """ ', "\n    return result\n"
    # llm-ls: "<PRE> " + prefix + " <SUF>" + suffix + " <MID>", posted to {url}/generate with return_full_text false.
    body = {
        "inputs": f"<PRE> {prefix} <SUF>{suffix} <MID>",
        "parameters": {"max_new_tokens": MAX, "return_full_text": False},
    }
    response = httpx.post(setup["url"] + "/generate", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "generated_text": _pipeline(setup, prefix + "<FILL_ME>" + suffix, return_full_text=False)
    }
    assert meta.infilling_ids(prefix, suffix) == meta.infilling_ids(*FILL.split("<FILL_ME>"))
    with httpx.stream("POST", setup["url"] + "/generate_stream", json=body, timeout=60) as stream:
        lines = [line for line in stream.iter_lines() if line]
    events = [json.loads(line.removeprefix("data:")) for line in lines]
    assert "[DONE]" not in "".join(lines)
    assert "".join(event["token"]["text"] for event in events) == response.json()["generated_text"]
    assert events[-1]["generated_text"] == response.json()["generated_text"]


def test_sampling_with_a_seed_repeats(setup):
    client = setup["client"]
    kwargs = {"max_new_tokens": MAX, "temperature": 0.7, "top_p": 0.9, "seed": 7, "return_full_text": False}
    assert client.text_generation(FILL, **kwargs) == client.text_generation(FILL, **kwargs)


def test_tgi_validation_errors_are_typed(setup):
    client = setup["client"]
    for kwargs in ({"temperature": 0.0}, {"top_p": 1.0}, {"max_new_tokens": 0}, {"stop": ["a", "b", "c", "d", "e"]}):
        with pytest.raises(ValidationError):
            client.text_generation("x", **{"max_new_tokens": 2, **kwargs})
    response = httpx.post(setup["url"] + "/generate", json={"inputs": "x", "parameters": {"truncate": 5}})
    assert response.status_code == 422
    assert response.json() == {
        "error": "parameters.truncate is not supported by this server",
        "error_type": "validation",
    }
    info = httpx.get(setup["url"] + "/info").json()
    assert info["model_id"] == "codellama-test" and info["max_total_tokens"] == 16384
