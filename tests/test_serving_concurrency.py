"""Many clients at once: each gets its solo result; a client that goes away frees its place in the batch."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from live_server import load, serve, torch_app
from real_data import code_cuts
from tiny_checkpoints import make_checkpoint

CLIENTS = 8
LONG = 16000  # far more than can be generated in the seconds a cancellation is given


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("serve-load") / "base", seed=8)
    live, _, _ = serve(checkpoint, max_tokens_cap=LONG)
    with live:
        yield live


def _engine(server):
    return server.server.config.app.state.engine


def _wait_idle(server, seconds=10.0):
    deadline = time.monotonic() + seconds
    while _engine(server).active and time.monotonic() < deadline:
        time.sleep(0.02)
    return _engine(server).active


def test_concurrent_clients_each_get_their_solo_result(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)
    cuts = [(p, s) for p, s in code_cuts(40, seed=31, max_len=200) if "<" not in p + s][:CLIENTS]

    def ask(index: int) -> str:
        prefix, suffix = cuts[index]
        kwargs = {"model": "codellama-test", "prompt": prefix, "max_tokens": 10 + index}
        if index % 2:
            kwargs |= {"suffix": suffix, "temperature": 0}
        else:  # sampled, seeded: the same tokens alone or under load
            kwargs |= {"temperature": 0.8, "seed": index}
        if index % 3 == 0:
            return "".join(c.choices[0].text for c in client.completions.create(**kwargs, stream=True))
        return client.completions.create(**kwargs).choices[0].text

    alone = [ask(index) for index in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        together = list(pool.map(ask, range(CLIENTS)))
    assert together == alone


def test_closed_stream_leaves_the_batch_and_the_next_request_is_served(server):
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    kwargs = {"model": "codellama-test", "prompt": "def main():\n", "temperature": 0}
    short = client.completions.create(**kwargs, max_tokens=5).choices[0].text
    stream = client.completions.create(**kwargs, max_tokens=LONG, stream=True)
    for _, _ in zip(range(3), stream, strict=False):
        pass
    assert _engine(server).active == 1
    stream.close()  # the editor cancels: the connection is dropped
    assert _wait_idle(server) == 0  # long before 16000 tokens could have been generated
    assert client.completions.create(**kwargs, max_tokens=5).choices[0].text == short


def test_disconnected_plain_request_is_cancelled(server):
    body = {"input_prefix": "def main():\n", "input_suffix": "", "n_predict": LONG, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/infill", json=body, timeout=1.0)
    assert _wait_idle(server) == 0
    done = httpx.post(server.url + "/infill", json={**body, "n_predict": 3}, timeout=60).json()
    assert done["tokens_predicted"] == 3


def test_app_starts_and_stops_its_engine(tmp_path):
    model, tokenizer = load(make_checkpoint(tmp_path / "base"))
    app = torch_app(model, tokenizer, model_name="m")
    from starlette.testclient import TestClient

    engine = app.state.engine
    with TestClient(app) as client:
        assert engine.running and client.get("/health").json() == {"status": "ok"}
    assert not engine.running


def test_full_queue_answers_503_and_recovers(tmp_path):
    live, _, _ = serve(make_checkpoint(tmp_path / "base"), max_batch_size=1, max_queue=1, max_tokens_cap=LONG)
    with live:
        client = openai.OpenAI(base_url=live.url + "/v1", api_key="none", max_retries=0)
        kwargs = {"model": "codellama-test", "prompt": "def main():\n", "temperature": 0, "stream": True}
        decoding = client.completions.create(**kwargs, max_tokens=LONG)
        next(iter(decoding))  # in the batch (its only slot)
        waiting = client.completions.create(**kwargs, max_tokens=LONG)  # in the queue (its only place)
        with pytest.raises(openai.InternalServerError) as caught:
            client.completions.create(**kwargs, max_tokens=2)
        assert caught.value.status_code == 503 and caught.value.code == "server_overloaded"
        decoding.close()
        waiting.close()
        assert _wait_idle(live) == 0
        assert client.completions.create(**{**kwargs, "stream": False}, max_tokens=2).choices[0].text is not None
