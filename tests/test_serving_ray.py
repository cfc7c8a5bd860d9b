"""`codellama-serve` on Ray Serve, on a real local Ray cluster (loopback only) with real HTTP clients.

One cluster for the module: two replicas of a tiny checkpoint behind the prefix-routing front, compared with the
single-process server over the same checkpoint. The Ctrl-C test runs first, on a cluster of its own that the command
starts (at the same time as the module's, to halve the start-up wait) and must leave no process of.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from live_server import serve as serve_locally
from real_data import code_cuts
from tiny_checkpoints import make_checkpoint

ray = pytest.importorskip("ray")
from ray import serve  # noqa: E402

from transformers_codellama.serving.ray_serve.deployment import REPLICA_HEADER, RayOptions, build_app  # noqa: E402

KEY = "ray-test-key"
NAME = "codellama-test"
HEADERS = {"Authorization": f"Bearer {KEY}"}
REPLICA = REPLICA_HEADER.decode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_processes(temp_dir: str) -> list[str]:
    """Ray's processes (raylet, gcs_server, workers) of the cluster whose temp dir is `temp_dir`."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            line = " ".join(process.info["cmdline"] or [])
            if temp_dir in line:
                found.append(line[:120])
    return found


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("serve-ray") / "base", seed=11)


@pytest.fixture(scope="module")
def cluster(checkpoint, command):
    """Two replicas behind the prefix router, at `url`; stopped (cluster included) after the module."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths live under it
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=temp_dir)
    port = _free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        options = RayOptions(model=str(checkpoint), model_name=NAME, replicas=2, replica_cpus=0.5, app={"api_key": KEY})
        serve.run(build_app(options), name="codellama", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
    deadline = time.monotonic() + 20
    while _ray_processes(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_processes(temp_dir)


@pytest.fixture(scope="module")
def single(checkpoint):
    live, _, _ = serve_locally(checkpoint, model_name=NAME, api_key=KEY)
    with live:
        yield live.url


def _ask(url: str, prefix: str, suffix: str, *, stream: bool, max_tokens: int = 12) -> str:
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    kwargs = {"model": NAME, "prompt": prefix, "suffix": suffix, "max_tokens": max_tokens, "temperature": 0}
    if stream:
        return "".join(chunk.choices[0].text for chunk in client.completions.create(**kwargs, stream=True))
    return client.completions.create(**kwargs).choices[0].text


class Command:
    """`codellama-serve --ray` in a subprocess on a cluster of its own; its stderr read by a thread."""

    def __init__(self, checkpoint: Path) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="rc", dir="/tmp")
        self.port = _free_port()
        command = [sys.executable, "-m", "transformers_codellama.serving.cli", str(checkpoint), "--ray"]
        command += ["--port", str(self.port), "--replicas", "1", "--replica-cpus", "0.5", "--model-name", NAME]
        env = {**os.environ, "RAY_TMPDIR": self.temp_dir, "PYTHONPATH": os.pathsep.join(sys.path)}
        # SIGINT's default handler back, should the tests run in the background of a shell (which ignores it there).
        self.process = subprocess.Popen(
            command,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self.start_line = ""
        self.started = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # read to the end, so a full pipe never blocks the command
            self.lines.append(line)
            if "on Ray Serve" in line:
                self.start_line = line
                self.started.set()
        self.started.set()


@pytest.fixture(scope="module")
def command(checkpoint):
    """The command, started before the module's cluster so that the two clusters start at the same time."""
    command = Command(checkpoint)
    try:
        yield command
    finally:
        if command.process.poll() is None:
            command.process.kill()


def test_ctrl_c_stops_the_cluster_it_started(command, cluster):
    process, temp_dir, port = command.process, command.temp_dir, command.port
    command.started.wait(timeout=300)  # the start-up line comes once the application runs
    assert process.poll() is None, "".join(command.lines[-20:])
    assert f"http://127.0.0.1:{port}" in command.start_line
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/completions", json={"model": NAME, "prompt": "def f(", "max_tokens": 4}
    )
    assert answer.status_code == 200, answer.text
    assert _ray_processes(temp_dir)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 0
    deadline = time.monotonic() + 20
    while _ray_processes(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_processes(temp_dir)
    # Only its own cluster: the module's, started beside it, still answers.
    assert _ask(cluster, "import os\n", "\n", stream=False, max_tokens=2) is not None


def test_two_replicas_answer_as_the_single_process_server(cluster, single):
    cuts = [(p, s) for p, s in code_cuts(40, seed=5, max_len=300) if "<" not in p + s][:8]
    alone = [_ask(single, prefix, suffix, stream=index % 2 == 1) for index, (prefix, suffix) in enumerate(cuts)]
    with ThreadPoolExecutor(len(cuts)) as pool:
        on_ray = list(pool.map(lambda item: _ask(cluster, *item[1], stream=item[0] % 2 == 1), enumerate(cuts)))
    assert on_ray == alone
    # The same refusals, byte for byte: the API key, a prompt over the context, an unknown route.
    too_long = {"model": NAME, "prompt": "x " * 20000, "max_tokens": 4}
    for method, path, body, headers in (
        ("POST", "/v1/completions", {"model": NAME, "prompt": "a"}, {}),
        ("POST", "/v1/completions", too_long, HEADERS),
        ("POST", "/infill", {"input_prefix": "a", "input_suffix": "b", "n_predict": "x"}, HEADERS),
        ("GET", "/v1/nothing", None, HEADERS),
    ):
        here = httpx.request(method, single + path, json=body, headers=headers, timeout=60)
        there = httpx.request(method, cluster + path, json=body, headers=headers, timeout=60)
        assert (there.status_code, there.json()) == (here.status_code, here.json())
        assert here.status_code in (400, 401, 404)


def test_the_prefix_router_keeps_an_editors_prompt_on_one_replica(cluster):
    file = "".join(prefix for prefix, _ in code_cuts(6, seed=9, max_len=400))[:1500]
    replicas = set()
    for keystroke in range(6):
        prefix = file[:-20] + f"value_{keystroke}"
        answer = httpx.post(
            cluster + "/v1/completions",
            json={"model": NAME, "prompt": prefix, "suffix": "\n", "max_tokens": 2},
            headers=HEADERS,
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        replicas.add(answer.headers[REPLICA])
        if keystroke:
            assert answer.json()["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    assert len(replicas) == 1


def _replica_pid(replica_id: str) -> int:
    actor = ray.get_actor(f"SERVE_REPLICA::codellama#CodeLlamaReplica#{replica_id}", namespace="serve")
    return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))


def _live_replicas() -> set[str]:
    prefix = "SERVE_REPLICA::codellama#CodeLlamaReplica#"
    names = [actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)]
    return {name.removeprefix(prefix) for name in names if name.startswith(prefix)}


def _ready(url: str) -> bool:
    status = serve.status().applications["codellama"].deployments["CodeLlamaReplica"].replica_states
    return status.get("RUNNING", 0) == 2 and len(status) == 1


def _front_pids() -> set[int]:
    """The front's processes; `info` (not `cmdline()`) so a zombie on the machine reads as no command line."""
    return {p.pid for p in psutil.process_iter(["cmdline"]) if "CodeLlamaFront" in " ".join(p.info["cmdline"] or [])}


def _wait_replaced(cluster: str, victim: str, survivor: set[str]) -> None:
    """Requests keep succeeding while Ray replaces the killed replica `victim`, until two replicas run again."""
    started = time.monotonic()
    while time.monotonic() - started < 60:
        assert _ask(cluster, "import os\n", "\n", stream=False, max_tokens=4) is not None
        live = _live_replicas()
        if victim not in live and len(live) == 2 and _ready(cluster):
            break
        time.sleep(0.2)
    assert victim not in live and len(live) == 2 and survivor <= live


def test_a_killed_replica_is_replaced_while_requests_keep_succeeding(cluster):
    front_pids = _front_pids()
    body = {"model": NAME, "prompt": "def main(", "max_tokens": 2000, "stream": True}
    with httpx.stream("POST", cluster + "/v1/completions", json=body, headers=HEADERS, timeout=30) as stream:
        assert stream.status_code == 200
        victim = stream.headers[REPLICA]
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        survivor = _live_replicas() - {victim}
        os.kill(_replica_pid(victim), signal.SIGKILL)
        rest = [line for line in lines if line.startswith("data:")]
    assert rest and '"error"' in rest[-1], rest[-3:]  # OpenAI's error event ends the stream, no hang
    _wait_replaced(cluster, victim, survivor)
    assert front_pids == _front_pids()


def test_an_ollama_stream_cut_by_a_dead_replica_ends_with_its_error_line(cluster):
    """Ollama's JSON lines end with Ollama's `{"error": ...}` line, which its client raises, as SSE streams end with
    their protocol's error event."""
    ollama = pytest.importorskip("ollama")
    replicas: list[str] = []
    client = ollama.Client(
        host=cluster, headers=HEADERS, event_hooks={"response": [lambda r: replicas.append(r.headers[REPLICA])]}
    )
    parts = client.generate(
        model=NAME, prompt="def main(", stream=True, options={"num_predict": 2000, "temperature": 0}
    )
    assert next(parts).done is False
    victim = replicas[0]
    survivor = _live_replicas() - {victim}
    os.kill(_replica_pid(victim), signal.SIGKILL)
    with pytest.raises(ollama.ResponseError, match="the replica serving this request stopped"):
        for _ in parts:
            pass
    _wait_replaced(cluster, victim, survivor)
