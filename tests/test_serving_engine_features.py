"""The engine seam: an engine declares what it can do (`EngineFeatures`), and a request asking for more is refused
before it starts, in the client's protocol, naming the field the client sent; a refusal the engine itself gives
(`InvalidRequest`) names the client's field too.

The engine under test is the real torch batch engine declaring fewer features than it has (as an engine without
penalties or log-probabilities would), served by the real app and talked to by each protocol's real client.
"""

from __future__ import annotations

import asyncio

import httpx
import ollama
import openai
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import ValidationError
from live_server import LiveServer, load
from mistralai.client import Mistral
from mistralai.client.errors import SDKError
from tiny_checkpoints import make_checkpoint

from transformers_codellama.serving.adapters.generation import ChoiceRequest, Generation
from transformers_codellama.serving.adapters.prompts import Prompt
from transformers_codellama.serving.adapters.tgi.routes import FIELDS as TGI_FIELDS
from transformers_codellama.serving.app import create_app
from transformers_codellama.serving.engines.base import EngineFeatures
from transformers_codellama.serving.engines.sampling import SamplingParams
from transformers_codellama.serving.engines.torch_batch.engine import TorchEngine, model_facts
from transformers_codellama.serving.http.errors import ServingError
from transformers_codellama.stopping import COMPLETE

NAME = "codellama-test"
PREFIX, SUFFIX = "def add(a, b):\n    ", "\n    return c\n"


class PlainEngine(TorchEngine):
    """The torch engine declaring only plain generation: no penalties, log-probabilities or minimum length."""

    features = EngineFeatures(penalties=frozenset(), logprobs=None, prompt_logprobs=False, min_new_tokens=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model, tokenizer = load(make_checkpoint(tmp_path_factory.mktemp("features") / "base", seed=3))
    engine = PlainEngine(model)
    with LiveServer(create_app(engine, tokenizer, model_facts(model, tokenizer), model_name=NAME)) as server:
        yield {"url": server.url, "engine": engine}


def _refused_before_it_started(setup, count):
    assert setup["engine"].prefills == count["prefills"] and setup["engine"].active == 0


@pytest.fixture
def count(setup):
    return {"prefills": setup["engine"].prefills}


def test_openai_names_the_field_it_sent(setup, count):
    client = openai.OpenAI(base_url=setup["url"] + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=NAME, prompt=PREFIX, max_tokens=4, frequency_penalty=0.5)
    assert refused.value.status_code == 400 and refused.value.param == "frequency_penalty"
    assert "frequency_penalty is not supported by this server's engine" in str(refused.value)
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=NAME, prompt=PREFIX, max_tokens=4, logprobs=2)
    assert refused.value.param == "logprobs"
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(model=NAME, prompt=PREFIX, max_tokens=4, presence_penalty=1.0)
    assert refused.value.param == "presence_penalty"
    _refused_before_it_started(setup, count)
    # What the engine can do is still served.
    answer = client.completions.create(model=NAME, prompt=PREFIX, suffix=SUFFIX, max_tokens=4, temperature=0)
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_mistral_names_min_tokens(setup, count):
    client = Mistral(api_key="none", server_url=setup["url"])
    with pytest.raises(SDKError) as refused:
        client.fim.complete(model=NAME, prompt=PREFIX, suffix=SUFFIX, max_tokens=4, min_tokens=2)
    assert (
        refused.value.status_code == 400 and "min_tokens is not supported by this server's engine" in refused.value.body
    )
    _refused_before_it_started(setup, count)


def test_tgi_names_the_field_under_parameters(setup, count):
    client = InferenceClient(base_url=setup["url"])
    with pytest.raises(
        ValidationError, match=r"parameters\.frequency_penalty is not supported by this server's engine"
    ):
        client.text_generation(PREFIX, max_new_tokens=4, frequency_penalty=0.5)
    with pytest.raises(ValidationError, match=r"parameters\.repetition_penalty is not supported"):
        client.text_generation(PREFIX, max_new_tokens=4, repetition_penalty=1.3)
    with pytest.raises(ValidationError, match=r"parameters\.details is not supported"):
        client.text_generation(PREFIX, max_new_tokens=4, details=True)
    _refused_before_it_started(setup, count)


def test_llamacpp_names_n_probs(setup, count):
    response = httpx.post(
        setup["url"] + "/infill", json={"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 4, "n_probs": 3}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "n_probs is not supported by this server's engine"
    _refused_before_it_started(setup, count)


def test_ollama_names_logprobs(setup, count):
    client = ollama.Client(host=setup["url"])
    with pytest.raises(ollama.ResponseError) as refused:
        client.generate(model=NAME, prompt=PREFIX, suffix=SUFFIX, logprobs=True, stream=False)
    assert refused.value.status_code == 400 and "logprobs is not supported by this server's engine" in str(
        refused.value
    )
    _refused_before_it_started(setup, count)


def test_a_refusal_of_the_engine_names_the_clients_field(tmp_path):
    """A sampling value the engine refuses (`InvalidRequest("sampling.top_p")`) is named as TGI spells it."""
    model, tokenizer = load(make_checkpoint(tmp_path / "base", seed=3))
    engine = TorchEngine(model)
    prompt = Prompt(ids=tokenizer.encode(PREFIX), mode=COMPLETE, text=PREFIX)

    async def submit() -> None:
        engine.start()
        try:
            Generation(engine, tokenizer, ChoiceRequest(prompt, 4, SamplingParams(top_p=0.0), fields=TGI_FIELDS))
        finally:
            engine.stop()

    with pytest.raises(ServingError) as refused:
        asyncio.run(submit())
    assert refused.value.param == "parameters.top_p" and refused.value.message == "top_p must be in (0, 1]; got 0.0"
    assert engine.prefills == 0
