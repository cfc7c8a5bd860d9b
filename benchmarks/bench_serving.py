"""The serving engine under load on a dim-256, 4-layer model: throughput and time to first token with 8 concurrent
clients against one client at a time, overhead against `model.generate`, and prefix reuse on an editor's
consecutive infilling requests; all measured side by side in one run (medians of interleaved rounds).

    python benchmarks/bench_serving.py [--threads 1] [--rounds 3]

Targets: 8 concurrent clients generate >= 3x the tokens/s of one client at a time, with a median time to first
token <= 2x; one request through the engine costs <= 10% more than `model.generate`; a ~1,500-token infilling
request whose prefix differs from the previous request's only in its last 20 characters reaches its first token in
<= 0.3x the time of a cold one.

The workload is an editor's: infilling prompts cut from real code (Python's standard library), each client sending
its requests back to back with lengths that vary (32 to 96 new tokens), so clients fall out of step as editors do;
the 8 clients start 5 ms apart and take their next request from one shared list until it is done.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

# torch's intra-op thread count is per thread (OpenMP): the environment gives every thread, transformers'
# continuous-batching manager's included, the count asked for.
os.environ.setdefault(
    "OMP_NUM_THREADS", sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
)

import torch
from transformers import GenerationConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODEL_SIZES, SHARED_DATA, alternating, real_code, save

from transformers_codellama import CodeLlamaConfig, CodeLlamaForCausalLM, CodeLlamaTokenizerFast
from transformers_codellama.serving.engines.base import EngineRequest
from transformers_codellama.serving.engines.torch_batch.engine import TorchEngine

CLIENTS = 8
REQUESTS = 24  # per load round, shared among the clients


def editor_cuts(count: int, seed: int = 0, before: int = 400, after: int = 150) -> list[tuple[str, str]]:
    """`count` (prefix, suffix) pairs cut from real code at random cursors: `before` characters, `after` after."""
    rng = random.Random(seed)
    sources = [text for text in real_code(2.0) if len(text) > 2 * (before + after)]
    cuts = []
    for _ in range(count):
        text = rng.choice(sources)
        cursor = rng.randrange(before, len(text) - after)
        cuts.append((text[cursor - before : cursor], text[cursor : cursor + after]))
    return cuts


def new_tokens(count: int, seed: int = 0) -> list[int]:
    """Lengths that vary as editors' completions do (32 to 96 tokens), so clients fall out of step."""
    rng = random.Random(seed)
    return [rng.randrange(32, 97) for _ in range(count)]


def editor_requests(tokenizer: CodeLlamaTokenizerFast, count: int, seed: int = 0) -> list[EngineRequest]:
    """`count` infilling requests cut from real code; no stop ids, so every request runs its length."""
    return [
        EngineRequest(tokenizer(prefix, suffix=suffix)["input_ids"], length, ())
        for (prefix, suffix), length in zip(editor_cuts(count, seed), new_tokens(count, seed))
    ]


async def client(engine: TorchEngine, work: collections.deque[EngineRequest], delay: float, ttfts: list[float]) -> int:
    """Take requests from the shared `work` until none is left, one after the other; record each one's time to
    first token; return the tokens received."""
    await asyncio.sleep(delay)
    received = 0
    while work:
        request = work.popleft()
        start = time.perf_counter()
        first = True
        async for _ in engine.submit(request):
            if first:
                ttfts.append(time.perf_counter() - start)
                first = False
            received += 1
    return received


async def load_round(engine: TorchEngine, requests: list[EngineRequest], clients: int) -> tuple[float, float]:
    """(generated tokens/s, median time to first token) with `clients` clients working through `requests`."""
    ttfts: list[float] = []
    work = collections.deque(requests)  # shared, so every client stays busy until the work runs out
    start = time.perf_counter()
    counts = await asyncio.gather(*[client(engine, work, 0.005 * index, ttfts) for index in range(clients)])
    return sum(counts) / (time.perf_counter() - start), statistics.median(ttfts)


async def first_token_time(engine: TorchEngine, request: EngineRequest) -> float:
    start = time.perf_counter()
    async for _ in engine.submit(request):
        return time.perf_counter() - start
    raise RuntimeError("no token generated")


async def engine_measurements(engine: TorchEngine, tokenizer: CodeLlamaTokenizerFast, rounds: int) -> dict:
    requests = editor_requests(tokenizer, REQUESTS)
    await load_round(engine, requests[:CLIENTS], CLIENTS)  # warm-up
    samples: dict[str, list[tuple[float, float]]] = {"one client at a time": [], f"{CLIENTS} concurrent clients": []}
    for round_ in range(rounds):
        order = [1, CLIENTS] if round_ % 2 == 0 else [CLIENTS, 1]
        for clients in order:
            engine.prefix_cache.clear()
            key = "one client at a time" if clients == 1 else f"{CLIENTS} concurrent clients"
            samples[key].append(await load_round(engine, requests, clients))
    results = {
        name: {
            "generated tokens/s": statistics.median(rate for rate, _ in values),
            "median time to first token ms": 1e3 * statistics.median(ttft for _, ttft in values),
        }
        for name, values in samples.items()
    }
    one, many = results["one client at a time"], results[f"{CLIENTS} concurrent clients"]
    results["ratios"] = {
        "tokens/s, 8 clients / 1 (target >= 3)": many["generated tokens/s"] / one["generated tokens/s"],
        "time to first token, 8 clients / 1 (target <= 2)": many["median time to first token ms"]
        / one["median time to first token ms"],
    }
    results["workload"] = {
        "requests": len(requests),
        "median prompt tokens": statistics.median(len(request.prompt_ids) for request in requests),
        "new tokens": f"{min(r.max_new_tokens for r in requests)} to {max(r.max_new_tokens for r in requests)}",
    }
    return results


async def prefix_measurements(engine: TorchEngine, tokenizer: CodeLlamaTokenizerFast, rounds: int) -> dict:
    """A ~1,500-token infilling request after one whose prefix lacked its last 20 characters, against cold."""
    text = max(real_code(1.0), key=len)
    cursor = len(text) // 2
    prefix_chars = 4000
    while True:  # about 4/5 of the prompt before the cursor, as an editor sends
        prefix, suffix = text[cursor - prefix_chars : cursor], text[cursor : cursor + prefix_chars // 4]
        prompt = tokenizer(prefix, suffix=suffix)["input_ids"]
        if len(prompt) >= 1500 or prefix_chars > cursor:
            break
        prefix_chars += 200
    previous = tokenizer(prefix[:-20], suffix=suffix)["input_ids"]
    request, before = EngineRequest(prompt, 1, ()), EngineRequest(previous, 0, ())

    async def cold() -> float:
        engine.prefix_cache.clear()
        return await first_token_time(engine, request)

    cached: list[int] = []

    async def warm() -> float:
        engine.prefix_cache.clear()
        async for _ in engine.submit(before):  # the previous keystroke's request (prefill only)
            pass
        start = time.perf_counter()
        stream = engine.submit(request)
        async for _ in stream:
            elapsed = time.perf_counter() - start
        cached.append(stream.cached_tokens)
        return elapsed

    times: dict[str, list[float]] = {"cold": [], "after the previous keystroke": []}
    for round_ in range(2 * rounds + 1):
        for name, measure in (("cold", cold), ("after the previous keystroke", warm))[:: 1 if round_ % 2 else -1]:
            times[name].append(await measure())
    medians = {name: 1e3 * statistics.median(values) for name, values in times.items()}
    return {
        "prompt tokens": len(prompt),
        "tokens reused from the previous prompt": cached[-1],
        "median time to first token ms": medians,
        "ratio warm / cold (target <= 0.3)": medians["after the previous keystroke"] / medians["cold"],
    }


def overhead_measurement(
    engine: TorchEngine, model: CodeLlamaForCausalLM, request: EngineRequest, repeats: int
) -> dict:
    """One request through the engine (submit, stream every token) against `model.generate` on the same ids."""
    new_tokens = request.max_new_tokens
    prompt = torch.tensor([request.prompt_ids])
    options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False, "pad_token_id": 0}
    loop = asyncio.new_event_loop()

    async def through_engine() -> list[int]:
        return [token async for token in engine.submit(request)]

    def engine_call() -> list[int]:
        engine.prefix_cache.clear()  # the same work as generate: the whole prompt prefilled
        return loop.run_until_complete(through_engine())

    def generate_call() -> list[int]:
        with torch.inference_mode():
            return model.generate(prompt, **options)[0, prompt.shape[1] :].tolist()

    assert engine_call() == generate_call(), "the engine must generate what generate does"
    times = alternating({"engine": engine_call, "model.generate": generate_call}, repeats)
    loop.close()
    return {
        "new tokens": new_tokens,
        "prompt tokens": len(request.prompt_ids),
        "median ms": {name: 1e3 * value for name, value in times.items()},
        "overhead (target <= 10%)": times["engine"] / times["model.generate"] - 1,
    }


class ManagerSilent(RuntimeError):
    """transformers' continuous-batching manager (the anchor) stopped answering: its failure, not this engine's."""


def manager_comparison(
    engine: TorchEngine, model: CodeLlamaForCausalLM, requests: list[EngineRequest], rounds: int
) -> dict:
    """transformers' continuous-batching manager (`init_continuous_batching`, warmed up) against this engine on the
    same requests, all submitted at once, in interleaved rounds; both checked against `generate`'s greedy tokens."""
    new_tokens = requests[0].max_new_tokens
    prompts = [request.prompt_ids for request in requests]
    options = {"max_new_tokens": new_tokens, "do_sample": False, "pad_token_id": 0}
    with torch.inference_mode():
        expected = [
            model.generate(torch.tensor([p]), min_new_tokens=new_tokens, **options)[0, len(p) :].tolist()
            for p in prompts
        ]

    async def engine_batch() -> list[list[int]]:
        async def one(request: EngineRequest) -> list[int]:
            return [token async for token in engine.submit(request)]

        return await asyncio.gather(*[one(request) for request in requests])

    def through_engine() -> list[list[int]]:
        engine.prefix_cache.clear()
        return asyncio.run(engine_batch())

    config = GenerationConfig(eos_token_id=-1, **options)  # no stop: every request runs its length
    manager = model.init_continuous_batching(generation_config=config)
    manager.start()

    def through_manager() -> list[list[int]]:
        ids = manager.add_requests(inputs=prompts, max_new_tokens=new_tokens)
        outputs: dict[str, list[int]] = {}
        while len(outputs) < len(ids):
            output = manager.get_result(timeout=60)
            if output is None:
                raise ManagerSilent("transformers' manager returned nothing for 60 s")
            if output.is_finished():
                outputs[output.request_id] = output.generated_tokens
        return [outputs[request_id] for request_id in ids]

    try:
        equal = {
            "this engine": sum(a == b for a, b in zip(through_engine(), expected)),
            "transformers' manager": sum(a == b for a, b in zip(through_manager(), expected)),
        }
        times = alternating({"this engine": through_engine, "transformers' manager": through_manager}, rounds)
    finally:
        manager.stop(block=True, timeout=30)
    return {
        "requests (all at once)": len(requests),
        "new tokens": new_tokens,
        "generated tokens/s": {name: len(requests) * new_tokens / seconds for name, seconds in times.items()},
        "requests equal to generate": equal,
    }


def http_measurements(model: CodeLlamaForCausalLM, tokenizer: CodeLlamaTokenizerFast, rounds: int) -> dict:
    """Both servers as processes on the same weights, one torch thread each, driven by streaming `openai` clients."""
    import serving_http as http  # needs the `serve` extra; imported only when measuring servers

    def make_work(seed: int) -> list[tuple[str, int]]:
        # transformers serve has no infilling: both servers complete the same text, as long as the engine's prompts.
        cuts, lengths = editor_cuts(REQUESTS, seed=100 + seed), new_tokens(REQUESTS, seed=100 + seed)
        return [(prefix + suffix, length) for (prefix, suffix), length in zip(cuts, lengths)]

    long_cuts = editor_cuts(4 * rounds + 2, seed=3, before=4800, after=1200)
    probe_prefix, probe_suffix = 'def remove_non_ascii(s: str) -> str:\n    """ ', "\n    return result\n"
    results: dict = {
        "workload": "plain completions of real code (~550 characters), 32 to 96 new tokens; /infill: "
        f"~{statistics.median(len(tokenizer(p, suffix=s).input_ids) for p, s in long_cuts):.0f}-token prompts",
    }
    # What Meta's layout makes the model write for the probe, and what it writes for the prefix alone.
    engine = TorchEngine(model)
    engine.start()

    async def greedy(ids: list[int], stops: tuple[int, ...]) -> list[int]:
        return [token async for token in engine.submit(EngineRequest(ids, 16, stops))]

    infill_ids = tokenizer(probe_prefix, suffix=probe_suffix)["input_ids"]
    meta_middle = tokenizer.decode_infill(asyncio.run(greedy(infill_ids, (tokenizer.eot_id, tokenizer.eos_token_id))))
    completion = tokenizer.decode(asyncio.run(greedy(tokenizer(probe_prefix)["input_ids"], (tokenizer.eos_token_id,))))
    engine.stop()
    ours_name, theirs_name = "codellama-serve", "transformers serve --continuous-batching"
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as servers:
        codellama_path, llama_path = http.export_checkpoints(model, tokenizer, Path(directory))
        port = http.free_port()
        url = servers.enter_context(
            http.server(http.codellama_serve(codellama_path, port), port, 1, Path(directory) / "ours.log")
        )
        targets = {ours_name: (url, "bench")}
        port = http.free_port()
        command = http.transformers_serve(llama_path, port)
        if command is None:
            results[theirs_name] = "not installed (pip install 'transformers[serving]')"
        else:  # both servers up at once, measured in the same rounds
            log = Path(directory) / "transformers.log"
            targets[theirs_name] = (servers.enter_context(http.server(command, port, 1, log)), str(llama_path))
        loads = http.compare_load(targets, make_work, rounds)
        ours = {"load": loads[ours_name]}
        prompts = [prompt for prompt, _ in make_work(99)[: 5 * rounds + 1]]
        ours["overhead vs generate"] = http.overhead(url, model, tokenizer, prompts, 32)
        ours["infill prefix reuse"] = http.infill_prefix_reuse(url, long_cuts, rounds)
        probe = http.suffix_probe(url, "bench", probe_prefix, probe_suffix, 16)
        ours["suffix: middle equals Meta's"] = probe.get("text") == meta_middle
        results[ours_name] = ours
        if theirs_name in targets:
            their_url, their_model = targets[theirs_name]
            probe = http.suffix_probe(their_url, their_model, probe_prefix, probe_suffix, 16)
            text = probe.get("text")
            results[theirs_name] = {
                "load": loads[theirs_name],
                "suffix": {
                    "answer (as JSON)": json.dumps(probe),
                    "middle equals Meta's": text == meta_middle,
                    "answer equals the completion of the prompt alone + the suffix": text == completion + probe_suffix,
                },
            }
            ours_rate = loads[ours_name]["8 clients"]["generated tokens/s"]
            theirs_rate = loads[theirs_name]["8 clients"]["generated tokens/s"]
            results["8 clients: codellama-serve / transformers serve (target >= 1)"] = ours_rate / theirs_rate
    results["Meta's middle for the suffix probe (as JSON)"] = json.dumps(meta_middle)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison; medians reported")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 keeps timings steady on a busy machine)"
    )
    parser.add_argument(
        "--no-http", dest="http", action="store_false", help="skip the servers (codellama-serve, transformers serve)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(SHARED_DATA / "codellama.model"))
    torch.manual_seed(0)
    model = CodeLlamaForCausalLM(CodeLlamaConfig(**MODEL_SIZES)).eval()
    engine = TorchEngine(model, max_batch_size=CLIENTS)
    engine.start()
    try:
        results = {"model": MODEL_SIZES, "threads": args.threads}
        results["engine"] = asyncio.run(engine_measurements(engine, tokenizer, args.rounds))
        results["prefix reuse"] = asyncio.run(prefix_measurements(engine, tokenizer, args.rounds))
        request = editor_requests(tokenizer, 1, seed=1)[0]
        results["overhead vs generate"] = overhead_measurement(
            engine, model, EngineRequest(request.prompt_ids, 32, ()), 5 * args.rounds
        )
        if hasattr(model, "generate_batch"):
            manager_requests = [
                EngineRequest(r.prompt_ids, 16, ()) for r in editor_requests(tokenizer, CLIENTS, seed=2)
            ]
            try:
                results["transformers' continuous-batching manager"] = manager_comparison(
                    engine, model, manager_requests, 2 * args.rounds
                )
            except ManagerSilent as error:  # the anchor's own failure: the other measurements still stand
                results["transformers' continuous-batching manager"] = f"failed: {error}"
    finally:
        engine.stop()
    if args.http:
        results["http"] = http_measurements(model, tokenizer, args.rounds)
    path = save("serving", results)
    print(json.dumps(results, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
