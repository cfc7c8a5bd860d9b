"""Bad input never hurts the server: 4xx in each protocol's own error shape, one clear line, and the next request served.

Also the API key (every endpoint but /health, each protocol's 401 shape), the body size limit and CORS being off.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import serve
from tiny_checkpoints import make_checkpoint

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BODY_LIMIT = 32 * 1024
GOOD = {"model": "codellama-test", "prompt": "def f(", "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("serve-errors") / "base", seed=6)
    server, _, _ = serve(checkpoint, api_key=KEY, max_body_bytes=BODY_LIMIT, max_choices=4, max_tokens_cap=4)
    with server:
        yield server.url


def _shape(path: str, response: httpx.Response) -> str:
    """The error's one-line message, after checking the body is the protocol's shape."""
    body = response.json()
    if path.startswith("/v1/"):
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
        return body["error"]["message"]
    if path == "/infill":
        assert set(body) == {"error"} and body["error"]["code"] == response.status_code, body
        assert isinstance(body["error"]["type"], str)
        return body["error"]["message"]
    assert set(body) == {"error", "error_type"}, body
    return body["error"]


BAD_OPENAI = [
    ({**GOOD, "max_tokens": "5"}, "max_tokens"),
    ({**GOOD, "max_tokens": -1}, "max_tokens"),
    ({**GOOD, "temperature": "hot"}, "temperature"),
    ({**GOOD, "temperature": 5}, "temperature"),
    ({**GOOD, "top_p": 2}, "top_p"),
    ({**GOOD, "n": 0}, "n"),
    ({**GOOD, "n": 5}, "n"),
    ({**GOOD, "seed": 2**70}, "seed"),
    ({**GOOD, "stream": "yes"}, "stream"),
    ({**GOOD, "prompt": 5}, "prompt"),
    ({**GOOD, "prompt": [1, 99999]}, "prompt"),  # token ids are prompts now; one outside the vocabulary is not
    ({**GOOD, "prompt": []}, "prompt"),
    ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({**GOOD, "best_of": 25}, "best_of"),
    ({**GOOD, "presence_penalty": 3.0}, "presence_penalty"),
    ({**GOOD, "logit_bias": {"50": 10}}, "logit_bias"),
    ({**GOOD, "frobnicate": True}, "frobnicate"),
    ({**GOOD, "prompt": "<PRE> a <SUF> b <SUF> c <MID>"}, "prompt"),
    ({**GOOD, "prompt": "a <FILL_ME> b", "suffix": "c"}, "FILL_ME"),
    ({"prompt": "x"}, "model"),
]


@pytest.mark.parametrize(("body", "field"), BAD_OPENAI, ids=[field for _, field in BAD_OPENAI])
def test_bad_completion_requests_name_the_field(url, body, field):
    response = httpx.post(url + "/v1/completions", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    message = _shape("/v1/completions", response)
    assert field in message and "\n" not in message
    assert response.json()["error"]["param"] in (field, "prompt")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/chat/completions", {"model": "codellama-test", "messages": []}, 400),
        ("/v1/chat/completions", {"model": "codellama-test", "messages": [{"role": "robot", "content": "x"}]}, 400),
        ("/v1/chat/completions", {"model": "codellama-test", "messages": [{"role": "user", "content": "x"}]}, 400),
        ("/v1/completions", {**GOOD, "model": "other"}, 404),
        ("/infill", {"input_prefix": 5, "input_suffix": ""}, 400),
        ("/infill", {"input_prefix": "", "input_suffix": "", "temperature": "hot"}, 400),
        ("/infill", {"input_prefix": "", "input_suffix": "", "lora": [{"id": 0, "scale": 0.5}]}, 400),
        ("/generate", {"inputs": 5}, 422),
        ("/generate", {"inputs": "x", "parameters": {"max_new_tokens": -3}}, 422),
        ("/generate", {"inputs": "x", "parameters": {"top_k": 0}}, 422),
        ("/generate", {"inputs": "x", "parameters": {"seed": -1}}, 422),
        ("/generate", {"inputs": "x", "parameters": {"best_of": 2}}, 422),
        ("/generate_stream", {"inputs": "x", "parameters": {"temperature": 0}}, 422),
        ("/", {"inputs": "x <FILL_ME> y <FILL_ME>"}, 422),
    ],
)
def test_bad_requests_get_the_protocols_error_shape(url, path, body, status):
    response = httpx.post(url + path, json=body, headers=AUTH)
    assert response.status_code == status, response.text
    message = _shape(path, response)
    assert message and "Traceback" not in response.text


@pytest.mark.parametrize("path", ["/v1/completions", "/infill", "/generate"])
def test_malformed_bodies_are_refused_in_shape(url, path):
    status = 422 if path == "/generate" else 400
    for content in (b"{not json", b"[1, 2]", b"", "\u00e9".encode("latin-1")):
        response = httpx.post(url + path, content=content, headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == status, (content, response.text)
        assert _shape(path, response)
    too_big = {"inputs": "x" * BODY_LIMIT, "input_prefix": "", "input_suffix": "", **GOOD}
    response = httpx.post(url + path, json=too_big, headers=AUTH)
    assert response.status_code == 413 and str(BODY_LIMIT) in _shape(path, response)

    def chunks():  # no Content-Length: the limit is counted on the received body
        yield b'{"prompt": "'
        for _ in range(BODY_LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = httpx.post(url + path, content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413 and str(BODY_LIMIT) in _shape(path, response)


def test_unknown_routes_and_methods(url):
    assert httpx.get(url + "/v1/nothing", headers=AUTH).status_code == 404
    assert _shape("/v1/nothing", httpx.get(url + "/v1/nothing", headers=AUTH))
    response = httpx.get(url + "/v1/completions", headers=AUTH)
    assert response.status_code == 405 and "GET" in _shape("/v1/completions", response)


def test_api_key_everywhere_but_health(url):
    assert httpx.get(url + "/health").status_code == 200
    for path, body in [
        ("/v1/completions", GOOD),
        ("/infill", {"input_prefix": "", "input_suffix": ""}),
        ("/generate", {"inputs": "x"}),
    ]:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": KEY},
            {"Authorization": "Basic " + KEY},
        ):
            response = httpx.post(url + path, json=body, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert "API key" in _shape(path, response)
    assert httpx.get(url + "/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError) as caught:
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert caught.value.code == "invalid_api_key"
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
    assert client.completions.create(**GOOD).choices[0].finish_reason in ("stop", "length")


def test_cors_is_off_and_the_server_still_serves(url):
    preflight = httpx.options(
        url + "/v1/completions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    response = httpx.post(url + "/v1/completions", json=GOOD, headers={**AUTH, "Origin": "https://evil.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_cors_only_for_configured_origins(tmp_path):
    from live_server import load, torch_app
    from starlette.testclient import TestClient

    model, tokenizer = load(make_checkpoint(tmp_path / "base"))
    app = torch_app(model, tokenizer, model_name="m", api_key=KEY, cors_origins=["https://editor.example"])
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Authorization"}
    with TestClient(app) as client:
        allowed = client.options("/v1/completions", headers={"Origin": "https://editor.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://editor.example"
        other = client.options("/v1/completions", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        assert client.get("/v1/models", headers={"Origin": "https://editor.example"}).status_code == 401


def test_models_without_infilling_refuse_it_and_still_complete(tmp_path):
    from live_server import load, torch_app
    from real_data import LLAMA2_MODEL
    from starlette.testclient import TestClient

    model, tokenizer = load(make_checkpoint(tmp_path / "python", variant="python", vocab_file=LLAMA2_MODEL))
    with TestClient(torch_app(model, tokenizer, model_name="m")) as client:
        for path, body in [
            ("/v1/completions", {"model": "m", "prompt": "def f(", "suffix": ")\n"}),
            ("/v1/completions", {"model": "m", "prompt": "<PRE> def f( <SUF>)\n <MID>"}),
            ("/infill", {"input_prefix": "def f(", "input_suffix": ")\n"}),
            ("/generate", {"inputs": "def f(<FILL_ME>)\n"}),
        ]:
            response = client.post(path, json=body)
            assert response.status_code == (422 if path == "/generate" else 400), response.text
            assert "cannot fill in the middle" in _shape(path, response)
        done = client.post(
            "/v1/completions", json={"model": "m", "prompt": "def f(", "max_tokens": 3, "temperature": 0}
        )
        assert done.status_code == 200 and done.json()["usage"]["prompt_tokens"] == len(
            tokenizer("def f(")["input_ids"]
        )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FIELDS = {
    "/v1/completions": ["model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "stop", "echo", "seed"],
    "/v1/chat/completions": ["model", "messages", "max_tokens", "temperature", "n", "stop", "seed"],
    "/infill": ["input_prefix", "input_suffix", "input_extra", "prompt", "n_predict", "n_cmpl", "stop", "top_k"],
    "/generate": ["inputs", "parameters"],
    "/": ["inputs", "parameters", "stream"],
}
VALID = {
    "/v1/completions": {"model": "codellama-test", "prompt": "x"},
    "/v1/chat/completions": {"model": "codellama-test", "messages": [{"role": "user", "content": "x"}]},
    "/infill": {"input_prefix": "a", "input_suffix": "b"},
    "/generate": {"inputs": "x"},
    "/": {"inputs": "x"},
}


@st.composite
def requests(draw):
    path = draw(st.sampled_from(sorted(FIELDS)))
    body = dict(VALID[path])
    for name in draw(st.lists(st.sampled_from(FIELDS[path]), max_size=3, unique=True)):
        body[name] = draw(JSON)
    return path, draw(st.one_of(st.just(body), JSON))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=requests())
def test_fuzzed_bodies_never_get_a_server_error(url, request):
    path, body = request
    response = httpx.post(url + path, json=body, headers=AUTH, timeout=60)
    assert response.status_code < 500, (path, body, response.text)
    if response.status_code >= 400:
        assert _shape(path, response)
    assert httpx.post(url + "/v1/completions", json=GOOD, headers=AUTH, timeout=60).status_code == 200


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/completions", '{"model": "codellama-test", "prompt": "x", "temperature": NaN}'),
        ("/v1/completions", '{"model": "codellama-test", "prompt": "x", "top_p": Infinity}'),
        ("/infill", '{"input_prefix": "x", "input_suffix": "", "temperature": NaN}'),
        ("/generate", '{"inputs": "x", "parameters": {"top_p": NaN}}'),
    ],
)
def test_non_finite_numbers_are_refused(url, path, raw):
    # Python's JSON parser reads NaN and Infinity; they must not reach sampling.
    response = httpx.post(url + path, content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    message = _shape(path, response)
    assert "got nan" in message or "got inf" in message
