"""The HTTP half of `bench_serving.py`: `codellama-serve` and `transformers serve --continuous-batching` as real
server processes on 127.0.0.1, driven by real streaming `openai` clients on the same weights and workload.

transformers cannot load the Code Llama checkpoint format, so it serves the plain-Llama export of the same weights
(`LlamaForCausalLM` + the same `tokenizer.json`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import torch
from transformers import LlamaConfig, LlamaForCausalLM

CLIENTS = 8


def export_checkpoints(model: Any, tokenizer: Any, directory: Path) -> tuple[Path, Path]:
    """The Code Llama checkpoint and its plain-Llama export (same weights, same `tokenizer.json`)."""
    codellama, llama = directory / "codellama", directory / "llama"
    model.save_pretrained(codellama)
    tokenizer.save_pretrained(codellama)
    fields = {k: v for k, v in model.config.to_dict().items() if k in LlamaConfig.__dataclass_fields__}
    plain = LlamaForCausalLM(LlamaConfig(**fields)).eval()
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.save_pretrained(llama)
    tokenizer.save_pretrained(llama)
    config_path = llama / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # transformers' own class over our tokenizer.json
    config.pop("auto_map", None)
    config_path.write_text(json.dumps(config, indent=2))
    return codellama, llama


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(command: list[str], port: int, threads: int, log: Path) -> Iterator[str]:
    """Run a server process (torch limited to `threads` threads) until its `/health` answers; yield its URL."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited ({process.returncode}); see {log}")
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start; see {log}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def codellama_serve(checkpoint: Path, port: int) -> list[str]:
    code = "import sys; from transformers_codellama.serving.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, str(checkpoint), "--port", str(port), "--model-name", "bench"]


def transformers_serve(checkpoint: Path, port: int) -> list[str] | None:
    executable = Path(sys.executable).parent / "transformers"
    if not executable.exists():
        return None
    command = [str(executable), "serve", str(checkpoint), "--continuous-batching", "--device", "cpu"]
    return [*command, "--host", "127.0.0.1", "--port", str(port)]


async def _stream(client: openai.AsyncOpenAI, model: str, prompt: str, max_tokens: int, **extra: Any) -> dict:
    """One streaming completion: time to first text, total time, text, finish reason."""
    start = time.perf_counter()
    first, text, finish = None, [], None
    stream = await client.completions.create(
        model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True, **extra
    )
    async for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        if choice.text and first is None:
            first = time.perf_counter() - start
        text.append(choice.text or "")
        finish = choice.finish_reason or finish
    return {"ttft": first, "seconds": time.perf_counter() - start, "text": "".join(text), "finish": finish}


async def load_round(url: str, model: str, work: list[tuple[str, int]], clients: int) -> dict:
    """`clients` streaming clients working through `work` (one shared list), each request after the previous."""
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=600)
    results: list[dict] = []
    queue = collections.deque(work)

    async def run(delay: float) -> None:
        await asyncio.sleep(delay)
        while queue:
            prompt, max_tokens = queue.popleft()
            results.append({**await _stream(client, model, prompt, max_tokens), "max_tokens": max_tokens})

    start = time.perf_counter()
    await asyncio.gather(*[run(0.005 * index) for index in range(clients)])
    elapsed = time.perf_counter() - start
    await client.close()
    finished = [result for result in results if result["finish"] == "length"]
    return {
        "tokens/s": sum(result["max_tokens"] for result in finished) / elapsed,
        "ttft": statistics.median(result["ttft"] for result in results if result["ttft"] is not None),
        "ran to length": f"{len(finished)}/{len(results)}",
    }


def compare_load(
    targets: dict[str, tuple[str, str]], make_work: Callable[[int], list[tuple[str, int]]], rounds: int
) -> dict:
    """For each server (`name: (url, model)`): one client at a time against `CLIENTS` concurrent clients, every
    server and client count in each round, the order reversed every round; medians.

    Each (round, client count) gets fresh prompts, `make_work(seed)`, the same for every server, so no server
    answers a prompt it has seen (both keep prompt state across requests)."""
    runs = [(name, clients) for name in targets for clients in (1, CLIENTS)]
    for url, model in targets.values():
        asyncio.run(load_round(url, model, make_work(0)[:CLIENTS], CLIENTS))  # warm-up
    samples: dict[tuple[str, int], list[dict]] = {run: [] for run in runs}
    for round_ in range(rounds):
        for name, clients in runs if round_ % 2 == 0 else runs[::-1]:
            url, model = targets[name]
            work = make_work(1 + 2 * round_ + (clients > 1))
            samples[name, clients].append(asyncio.run(load_round(url, model, work, clients)))
    tables = {}
    for name in targets:
        table = {
            f"{clients} client{'s' if clients > 1 else ''}": {
                "generated tokens/s": statistics.median(sample["tokens/s"] for sample in samples[name, clients]),
                "median time to first token ms": 1e3
                * statistics.median(sample["ttft"] for sample in samples[name, clients]),
                "ran to length": samples[name, clients][-1]["ran to length"],
            }
            for clients in (1, CLIENTS)
        }
        one, many = table["1 client"], table[f"{CLIENTS} clients"]
        table["ratios"] = {
            "tokens/s, 8 clients / 1": many["generated tokens/s"] / one["generated tokens/s"],
            "time to first token, 8 clients / 1": many["median time to first token ms"]
            / one["median time to first token ms"],
        }
        tables[name] = table
    return tables


def overhead(url: str, model: Any, tokenizer: Any, prompts: list[str], new_tokens: int) -> dict:
    """One non-streamed completion through the server against `model.generate` in this process, each round on a
    new prompt of `prompts` (the same for both), so the server's prefix cache has nothing to reuse."""
    options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "pad_token_id": 0}
    http = httpx.Client(timeout=600)

    def through_server(prompt: str) -> str:
        body = {"model": "bench", "prompt": prompt, "max_tokens": new_tokens, "temperature": 0}
        answer = http.post(url + "/v1/completions", json=body).json()
        assert answer["choices"][0]["finish_reason"] == "length", answer
        return answer["choices"][0]["text"]

    def in_process(prompt: str) -> list[int]:
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        with torch.inference_mode():
            return model.generate(ids, **options)[0, ids.shape[1] :].tolist()

    # The same tokens (the server keeps the space a first `▁` piece starts with, as a completion's text does).
    server_text, in_process_text = through_server(prompts[0]), tokenizer.decode(in_process(prompts[0]))
    assert server_text.removeprefix(" ") == in_process_text.removeprefix(" "), (
        "the server must generate what generate does"
    )
    samples: dict[str, list[float]] = {"server (HTTP)": [], "model.generate in-process": []}
    for round_, prompt in enumerate(prompts[1:]):
        pairs = (("server (HTTP)", through_server), ("model.generate in-process", in_process))
        for name, function in pairs if round_ % 2 == 0 else pairs[::-1]:
            start = time.perf_counter()
            function(prompt)
            samples[name].append(time.perf_counter() - start)
    http.close()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "new tokens": new_tokens,
        "median ms": {name: 1e3 * value for name, value in medians.items()},
        "overhead (target <= 10%)": medians["server (HTTP)"] / medians["model.generate in-process"] - 1,
    }


def infill_prefix_reuse(url: str, editor_cuts: list[tuple[str, str]], rounds: int) -> dict:
    """llama.vscode's pattern on `/infill`: an `n_predict: 0` warm-up with the prefix 20 characters short, then the
    request; time to first token against a cold request (a fresh cut of the same size, never seen before)."""
    http = httpx.Client(timeout=600)

    def first_token(prefix: str, suffix: str) -> float:
        body = {"input_prefix": prefix, "input_suffix": suffix, "n_predict": 1, "stream": True, "temperature": 0}
        start = time.perf_counter()
        with http.stream("POST", url + "/infill", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    return time.perf_counter() - start
        raise RuntimeError("no token streamed")

    samples: dict[str, list[float]] = {"cold": [], "after the warm-up": []}
    cuts = iter(editor_cuts)
    for round_ in range(2 * rounds + 1):
        for name in ("cold", "after the warm-up") if round_ % 2 == 0 else ("after the warm-up", "cold"):
            prefix, suffix = next(cuts)
            if name != "cold":
                warm = {"input_prefix": prefix[:-20], "input_suffix": suffix, "n_predict": 0}
                http.post(url + "/infill", json=warm).raise_for_status()
            samples[name].append(first_token(prefix, suffix))
    http.close()
    medians = {name: 1e3 * statistics.median(values) for name, values in samples.items()}
    return {
        "median time to first token ms": medians,
        "ratio warm / cold (target <= 0.3)": medians["after the warm-up"] / medians["cold"],
    }


def suffix_probe(url: str, model_name: str, prefix: str, suffix: str, new_tokens: int) -> dict:
    """What a server's `/v1/completions` answers for `prompt` + `suffix` (greedy), as text."""
    body = {"model": model_name, "prompt": prefix, "suffix": suffix, "max_tokens": new_tokens, "temperature": 0}
    answer = httpx.post(url + "/v1/completions", json=body, timeout=600)
    if answer.status_code != 200:
        return {"status": answer.status_code, "body": answer.text[:300]}
    return {"text": answer.json()["choices"][0]["text"]}


__all__ = [
    "codellama_serve",
    "compare_load",
    "export_checkpoints",
    "free_port",
    "infill_prefix_reuse",
    "overhead",
    "server",
    "suffix_probe",
    "transformers_serve",
]
