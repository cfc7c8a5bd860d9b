"""What an operator reads from the server: `/openapi.json` and `/docs`, Prometheus `/metrics`, all behind the API key;
the suffix-first layout on `/infill`; and a form-encoded body (curl's `-d`) told which content type to send."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from live_server import serve, torch_app
from prometheus_client.parser import text_string_to_metric_families
from tiny_checkpoints import MetaReference, greedy, make_checkpoint

KEY = "ops-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PREFIX, SUFFIX = "def add(a, b):\n    ", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("serve-ops") / "base", seed=11)
    server, model, tokenizer = serve(checkpoint, api_key=KEY, max_tokens_cap=4)
    with server:
        yield {"url": server.url, "model": model, "tokenizer": tokenizer}


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url + "/metrics", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_schema_docs_and_metrics_need_the_key_like_every_endpoint(setup):
    url = setup["url"]
    for path in ("/openapi.json", "/docs", "/metrics"):
        refused = httpx.get(url + path)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
        assert httpx.get(url + path, headers=AUTH).status_code == 200, path
    schema = httpx.get(url + "/openapi.json", headers=AUTH).json()
    assert schema["info"]["title"] == "codellama-serve"
    assert {"/v1/completions", "/v1/chat/completions", "/infill", "/generate", "/health", "/metrics"} <= set(
        schema["paths"]
    )
    assert "swagger-ui" in httpx.get(url + "/docs", headers=AUTH).text
    assert httpx.get(url + "/health").status_code == 200  # still public
    # Each app has its own registry: a second app in this process registers the same names without a clash.
    torch_app(setup["model"], setup["tokenizer"], model_name="second")


def test_metrics_count_requests_tokens_latencies_and_prefix_reuse(setup):
    url = setup["url"]
    before = _samples(url)
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 4, "temperature": 0}
    first = httpx.post(url + "/infill", json=body, headers=AUTH).json()
    second = httpx.post(url + "/infill", json=body, headers=AUTH).json()  # the same prompt: its state is reused
    streamed = httpx.post(
        url + "/v1/completions",
        json={"model": "codellama-test", "prompt": "import os\n", "max_tokens": 3, "temperature": 0, "stream": True,
              "stream_options": {"include_usage": True}},
        headers=AUTH,
    )  # fmt: skip
    assert streamed.status_code == 200, streamed.text
    usage = next(line for line in streamed.text.splitlines() if '"usage": {' in line and '"prompt_tokens"' in line)
    assert httpx.get(url + "/v1/models").status_code == 401
    after = _samples(url)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("codellama_http_requests_total", route="/infill", method="POST", status="200") == 2
    assert grew("codellama_http_requests_total", route="/v1/completions", method="POST", status="200") == 1
    assert grew("codellama_http_requests_total", route="/v1/models", method="GET", status="401") == 1
    completion = json.loads(usage.removeprefix("data: "))["usage"]
    generated = first["tokens_predicted"] + second["tokens_predicted"] + completion["completion_tokens"]
    prompted = first["tokens_evaluated"] + second["tokens_evaluated"] + completion["prompt_tokens"]
    assert grew("codellama_generation_tokens_total") == generated
    assert grew("codellama_prompt_tokens_total") == prompted
    assert grew("codellama_time_to_first_token_seconds_count") == 3
    assert grew("codellama_time_per_output_token_seconds_count") == generated - 3
    assert second["tokens_cached"] > 0
    assert grew("codellama_prefix_cache_hits_total") >= 1
    assert grew("codellama_prefix_cache_hit_tokens_total") >= second["tokens_cached"]
    assert after[("codellama_requests_running", ())] == 0 and after[("codellama_requests_waiting", ())] == 0
    assert grew("codellama_http_request_duration_seconds_count", route="/infill") == 2


def test_suffix_first_layout_on_infill_is_metas(setup):
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 4, "temperature": 0, "spm_infill": True,
            "return_tokens": True}  # fmt: skip
    result = httpx.post(setup["url"] + "/infill", json=body, headers=AUTH).json()
    reference = MetaReference()
    ids = reference.infilling_ids(PREFIX, SUFFIX, suffix_first=True)
    assert result["tokens_evaluated"] == len(ids)
    expected = greedy(setup["model"], ids, stop=[reference.eot, reference.eos], max_new_tokens=4)
    assert result["tokens"] == expected


def test_a_form_encoded_body_is_told_to_send_json(setup):
    # curl -d sends application/x-www-form-urlencoded; JSON is only read from a JSON body (no cross-site form posts).
    done = subprocess.run(
        ["curl", "-s", setup["url"] + "/v1/completions", "-H", f"Authorization: Bearer {KEY}",
         "-d", '{"prompt": "def f(", "max_tokens": 2}'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "send the body with Content-Type: application/json" in done.stdout
    assert "application/x-www-form-urlencoded" in done.stdout


def test_a_vanishing_temperature_samples_as_greedy(setup):
    # Found by the schema fuzzer: logits / 5e-324 overflow to inf, and softmax of inf is NaN (a 500 before).
    body = {"input_prefix": PREFIX, "input_suffix": SUFFIX, "n_predict": 3, "return_tokens": True}
    greedy_tokens = httpx.post(setup["url"] + "/infill", json={**body, "temperature": 0}, headers=AUTH).json()
    tiny = httpx.post(setup["url"] + "/infill", json={**body, "temperature": 5e-324, "top_k": 0}, headers=AUTH)
    assert tiny.status_code == 200, tiny.text
    assert tiny.json()["tokens"] == greedy_tokens["tokens"]
