"""Schemathesis over the schema the server serves: every operation, a bounded number of generated requests each
(valid and invalid), against the live loopback server. No request may get a 5xx, and the server is healthy after."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from live_server import serve
from tiny_checkpoints import make_checkpoint

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
EXAMPLES = 20  # per operation: about 300 requests in all, well under a minute on 2 cores


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    checkpoint = make_checkpoint(tmp_path_factory.mktemp("serve-fuzz") / "base", seed=12)
    server, _, _ = serve(checkpoint, api_key=KEY, max_tokens_cap=4, max_choices=2)
    with server:
        yield server.url


def test_no_generated_request_gets_a_server_error(url):
    schema = schemathesis.openapi.from_url(url + "/openapi.json", headers=AUTH)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [operation.label for operation in operations]
    failures: list[str] = []
    sent = [0]
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case) -> None:
            response = case.call(base_url=url, headers=AUTH, timeout=60)
            sent[0] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} {case.body!r} -> {response.status_code} {response.text}")

        run()
    assert sent[0] >= EXAMPLES * len(operations) // 2
    assert not failures, "\n".join(failures[:10])
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    good = {"model": "codellama-test", "prompt": "def f(", "max_tokens": 2, "temperature": 0}
    assert httpx.post(url + "/v1/completions", json=good, headers=AUTH).status_code == 200
