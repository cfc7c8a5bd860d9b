"""`codellama-serve` on Ray Serve against the single process, on a local cluster on 127.0.0.1, in one run.

    python benchmarks/bench_serving_ray.py [--clients 16] [--editors 8] [--keystrokes 6]

Prints: tokens/s and median time to first token at 16 streaming clients for the single process, 1 replica and 2
replicas; the router comparison (2 replicas, 8 editors each sending a ~1,500-token infilling prompt whose prefix's
last 20 characters change per keystroke): prefix-reuse hit rate (cached prompt tokens / prompt tokens) and median
time to first token, prefix router against Ray's power-of-two; and the per-request overhead of the Ray path against
the single process at 1 client. On a 2-core machine two replicas share the same cores as one, so their throughput
ratio measures the overhead of the second engine, not scaling: each replica gets its own cores on a real cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

NAME = "codellama-bench"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _stream(client: httpx.AsyncClient, url: str, body: dict) -> tuple[float, int, int, int]:
    """Time to first token, tokens, prompt tokens and cached prompt tokens of one streamed completion."""
    started = time.perf_counter()
    first = 0.0
    tokens = prompt = cached = 0
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", url + "/v1/completions", json=body, timeout=600) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            if '"text"' in line and not first:
                first = time.perf_counter() - started
            if '"usage"' in line and '"prompt_tokens"' in line:
                import json

                usage = json.loads(line[6:])["usage"]
                if usage:
                    tokens = usage["completion_tokens"]
                    prompt = usage["prompt_tokens"]
                    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return first, tokens, prompt, cached


async def throughput(url: str, prompts: list[str], clients: int) -> tuple[float, float]:
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *[_stream(client, url, {"model": NAME, "prompt": p, "max_tokens": 48}) for p in prompts[:clients]]
        )
        seconds = time.perf_counter() - started
    return sum(r[1] for r in results) / seconds, statistics.median(r[0] for r in results)


async def editors(url: str, files: list[str], keystrokes: int) -> tuple[float, float]:
    async def editor(client: httpx.AsyncClient, file: str, index: int) -> list[tuple[float, int, int, int]]:
        out = []
        for key in range(keystrokes):
            prefix = file[:-20] + f"x{index}_{key}".ljust(20)
            out.append(await _stream(client, url, {"model": NAME, "prompt": prefix, "suffix": "\n", "max_tokens": 8}))
        return out

    async with httpx.AsyncClient() as client:
        runs = await asyncio.gather(*[editor(client, file, i) for i, file in enumerate(files)])
    later = [r for run in runs for r in run[1:]]
    return sum(r[3] for r in later) / max(1, sum(r[2] for r in later)), statistics.median(r[0] for r in later)


async def warm_up(url: str, prompts: list[str]) -> None:
    """A few requests first, so no contender's measurement pays torch's first-call costs."""
    async with httpx.AsyncClient() as client:
        for prompt in prompts[:2]:
            await _stream(client, url, {"model": NAME, "prompt": prompt, "max_tokens": 8})
        await asyncio.gather(
            *[_stream(client, url, {"model": NAME, "prompt": p, "max_tokens": 8}) for p in prompts[:4]]
        )


@contextlib.contextmanager
def single_process(checkpoint: Path, threads: int) -> Iterator[str]:
    """`codellama-serve CHECKPOINT` in its own process (as deployed, not sharing the client's GIL), at the URL."""
    port = _port()
    command = [sys.executable, "-m", "transformers_codellama.serving.cli", str(checkpoint), "--port", str(port)]
    command += ["--model-name", NAME, "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/v1/models", timeout=5).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("codellama-serve did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


async def one_client(url: str, prompt: str, rounds: int = 8) -> float:
    async with httpx.AsyncClient() as client:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            answer = await client.post(url + "/v1/completions", json={"model": NAME, "prompt": prompt, "max_tokens": 8})
            answer.raise_for_status()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--editors", type=int, default=8)
    parser.add_argument("--keystrokes", type=int, default=6)
    args = parser.parse_args()

    import ray
    from ray import serve
    from real_data import code_cuts
    from tiny_checkpoints import make_checkpoint

    from transformers_codellama.serving.ray_serve.deployment import RayOptions, build_app

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    checkpoint = make_checkpoint(work / "base", seed=3)
    cuts = [p for p, _ in code_cuts(200, seed=1, max_len=600)]
    prompts = cuts[: args.clients]
    text = "".join(cuts)
    files = [text[i * 5000 : i * 5000 + 5000] for i in range(args.editors)]  # ~1,500 tokens each

    # Ray gives each replica's torch one thread (OMP_NUM_THREADS from its 0.5 CPU); the single process gets the same.
    with single_process(checkpoint, threads=1) as single_url:
        asyncio.run(warm_up(single_url, prompts))
        single = asyncio.run(throughput(single_url, prompts, args.clients))
        single_one = asyncio.run(one_client(single_url, prompts[0]))
    print(f"single process: {single[0]:.0f} tokens/s, median TTFT {single[1] * 1000:.0f} ms at {args.clients} clients")

    temp_dir = tempfile.mkdtemp(prefix="rb", dir="/tmp")  # short: Ray's socket paths live under it
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=temp_dir, log_to_driver=False)
    port = _port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}"
    try:
        results = {}
        for replicas, router in ((1, "prefix"), (2, "prefix"), (2, "power-of-two")):
            options = RayOptions(
                model=str(checkpoint), model_name=NAME, replicas=replicas, replica_cpus=0.5, router=router
            )
            serve.run(build_app(options), name="codellama", route_prefix="/")
            asyncio.run(warm_up(url, prompts))
            results[replicas, router] = (
                asyncio.run(throughput(url, prompts, args.clients)),
                asyncio.run(editors(url, files, args.keystrokes)),
                asyncio.run(one_client(url, prompts[0])),
            )
            serve.delete("codellama")
    finally:
        serve.shutdown()
        ray.shutdown()
    for (replicas, router), ((tps, ttft), _, _) in results.items():
        print(f"ray {replicas} replica(s), {router}: {tps:.0f} tokens/s, median TTFT {ttft * 1000:.0f} ms")
    ratio = results[2, "prefix"][0][0] / results[1, "prefix"][0][0]
    print(f"2 replicas / 1 replica tokens/s: {ratio:.2f} (both share this machine's {_cores()} cores)")
    for router in ("prefix", "power-of-two"):
        hit, ttft = results[2, router][1]
        print(f"editors, 2 replicas, {router}: prefix reuse {hit:.0%}, median TTFT {ttft * 1000:.0f} ms")
    overhead = results[1, "prefix"][2] - single_one
    print(
        f"1 client, 8 tokens: single {single_one * 1000:.1f} ms, ray {results[1, 'prefix'][2] * 1000:.1f} ms "
        f"(+{overhead * 1000:.1f} ms per request)"
    )


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
