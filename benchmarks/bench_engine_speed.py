"""How fast the engine decodes against its limit and its anchor, and what prompt-lookup speculation buys; one run.

    python benchmarks/bench_engine_speed.py [--rounds 3] [--threads 1] [--no-http] [--no-speculation]

1. The limit: a bare batched greedy loop over the dim-256, 4-layer model (its forward with its cache, no server,
   no text) at batch 1, 8 and 32, as tokens/s. The servers' workloads also prefill every request's prompt, which
   that loop never does, so beside it stands the limit for the same work: the workload's tokens over the time its
   prompts take to prefill one by one (the model's forward, nothing else, past the tokens an earlier prompt
   shares) plus the loop's time for its tokens. No server can pass it without skipping work; the engine
   in-process (no HTTP) is measured against both.
2. `codellama-serve` and `transformers serve --continuous-batching` as processes on the same weights, streaming
   clients at 1, 8 and 32: tokens/s and median time to first token; ours also as a share of the bare loop. Two
   workloads (`WORKLOADS`): plain completions of unrelated cuts of real code, and editors typing (each cursor's
   next prompt is its previous one with a few more characters typed, as editors send them).
3. Speculation off and on, in-process engines measured in alternating rounds:
   - the edit workload on the trained tiny model: infilling prompts cut from held-out real code where the middle
     (one line) repeats a line of the prefix or suffix; acceptance rate, tokens/s per client and latency to the
     full middle (to its EOT); and the ceiling prompt lookup has there: the tokens per step it would give if
     verifying a draft cost nothing, replayed over the model's own greedy middles (no speed-up can exceed it);
   - a workload where nothing matches: the random-weight dim-256 model on editor prompts, sampled at temperature 1
     (its output repeats nothing), 1 and 8 clients.
It writes `benchmarks/results/engine_speed.json` and the plot `docs/serving_speed.png` / `.svg`.

Targets (issue 21): >= 2x the anchor's tokens/s at 8 and 32 clients with a time to first token no worse; >= 0.8x
the bare loop at 32; >= 1.5x tokens/s per client on the edit workload with speculation; >= 0.95x everywhere else.
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
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault(
    "OMP_NUM_THREADS", sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
)

import torch
from transformers import DynamicCache

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import editor_cuts, editor_requests, new_tokens
from common import MODEL_SIZES, REPO, SHARED_DATA, save

from transformers_codellama import CodeLlamaConfig, CodeLlamaForCausalLM, CodeLlamaTokenizerFast
from transformers_codellama.serving.engines.base import EngineRequest
from transformers_codellama.serving.engines.sampling import SamplingParams
from transformers_codellama.serving.engines.speculation import DEFAULT_LOOKUP, NgramIndex, PromptLookup
from transformers_codellama.serving.engines.torch_batch.batch import forward
from transformers_codellama.serving.engines.torch_batch.engine import TorchEngine

CLIENT_COUNTS = (1, 8, 32)
KEYSTROKES, TYPED = 6, 6  # the editors-typing workload: completions per cursor, characters typed between them
PLOT = REPO / "docs" / "serving_speed"


def bare_loop(model: CodeLlamaForCausalLM, rows: int, prompt: int = 160, steps: int = 64) -> float:
    """Tokens/s of greedy decoding `rows` equal-length random prompts together: the model's forward with its own
    cache, argmax, nothing else (the prefill is not timed)."""
    generator = torch.Generator().manual_seed(rows)
    ids = torch.randint(3, model.config.vocab_size, (rows, prompt), generator=generator)
    cache = DynamicCache()
    with torch.inference_mode():
        logits = forward(model, cache, input_ids=ids, logits_to_keep=1).logits
        start = time.perf_counter()
        for _ in range(steps):
            token = logits[:, -1].argmax(dim=-1, keepdim=True)
            logits = forward(model, cache, input_ids=token).logits
    return rows * steps / (time.perf_counter() - start)


def shared_prefix(prompt: list[int], earlier: list[list[int]]) -> int:
    """How many leading tokens of `prompt` an earlier prompt already holds (what a perfect prefix cache reuses)."""
    longest = 0
    for other in earlier:
        same = next((i for i, (a, b) in enumerate(zip(prompt, other)) if a != b), min(len(prompt), len(other)))
        longest = max(longest, same)
    return min(longest, len(prompt) - 1)  # the last token is always run: its logits choose the first new one


def prefill_seconds(model: CodeLlamaForCausalLM, prompts: list[list[int]]) -> float:
    """Seconds to prefill `prompts` one by one, each only past the longest prefix an earlier one shares (that part's
    state built untimed): the model's forward and nothing else, summed. Prompts that share nothing are prefilled
    whole."""
    total = 0.0
    with torch.inference_mode():
        for index, ids in enumerate(prompts):
            shared, cache = shared_prefix(ids, prompts[:index]), DynamicCache()
            if shared:
                forward(model, cache, input_ids=torch.tensor([ids[:shared]]))
            start = time.perf_counter()
            forward(model, cache, input_ids=torch.tensor([ids[shared:]]), logits_to_keep=1)
            total += time.perf_counter() - start
    return total


def same_work_limit(model: CodeLlamaForCausalLM, requests: list[EngineRequest], decode_rate: float) -> float:
    """Tokens/s of `requests` done with nothing but the model: each prompt prefilled past what an earlier one
    shares, every new token at the bare loop's `decode_rate` (tokens/s at the batch size the requests run at)."""
    tokens = sum(request.max_new_tokens for request in requests)
    return tokens / (prefill_seconds(model, [request.prompt_ids for request in requests]) + tokens / decode_rate)


def http_work(seed: int, count: int) -> list[tuple[str, int]]:
    """Plain completions of real code (~550 characters), 32 to 96 new tokens (transformers serve cannot infill)."""
    cuts, lengths = editor_cuts(count, seed=100 + seed), new_tokens(count, seed=100 + seed)
    return [(prefix + suffix, length) for (prefix, suffix), length in zip(cuts, lengths)]


def keystroke_work(seed: int, editors: int) -> list[tuple[str, int]]:
    """Editors typing: at each of `editors` cursors in real code, KEYSTROKES completions of the same ~400 characters
    before the cursor, each with the next TYPED characters of the code typed after the previous one; 32 to 96 new
    tokens. Every editor's first keystroke comes first, then every second one..., so an editor's next prompt is
    sent after its previous one was taken."""
    cuts = editor_cuts(editors, seed=200 + seed)
    lengths = iter(new_tokens(editors * KEYSTROKES, seed=200 + seed))
    return [
        (prefix + suffix[: TYPED * keystroke], next(lengths))
        for keystroke in range(KEYSTROKES)
        for prefix, suffix in cuts
    ]


# name -> (seed, clients) -> the (prompt, new tokens) that many clients work through.
WORKLOADS: dict[str, Callable[[int, int], list[tuple[str, int]]]] = {
    "plain completions": lambda seed, clients: http_work(seed, max(8, 2 * clients)),
    "editors typing": lambda seed, clients: keystroke_work(seed, max(8, clients)),
}


def in_process_measurements(
    model: CodeLlamaForCausalLM, tokenizer: CodeLlamaTokenizerFast, bare: dict[str, float], rounds: int
) -> dict:
    """The HTTP workloads without HTTP: the engine driven in this process, and the same-work limit, at each client
    count; medians of `rounds` (the limit's and the engine's alternating). Speculation is off here: greedy decoding
    from random weights repeats itself, which prompt lookup turns into several tokens a step, and the limit is for
    one token a step. The prefix cache is on, as in the server."""
    engine = TorchEngine(model)
    engine.start()
    try:
        asyncio.run(_round(engine, work_requests(tokenizer, http_work(0, 32)), 32))  # warm-up
        tables: dict[str, dict] = {}
        for workload, make_work in WORKLOADS.items():
            table = tables[workload] = {}
            for clients in CLIENT_COUNTS:
                limits, rates = [], []
                for round_ in range(rounds):
                    requests = work_requests(tokenizer, make_work(1 + 10 * round_ + clients, clients))
                    limits.append(same_work_limit(model, requests, bare[f"batch {clients}"]))
                    result = asyncio.run(_round(engine, requests, clients))
                    rates.append(result["tokens/s per client"] * clients)
                limit, rate = statistics.median(limits), statistics.median(rates)
                table[f"{clients} clients"] = {
                    "same-work limit tokens/s": limit,
                    "same-work limit / bare loop": limit / bare[f"batch {clients}"],
                    "engine in-process tokens/s (speculation off)": rate,
                    "engine in-process / same-work limit": rate / limit,
                }
        return tables
    finally:
        engine.stop()


def work_requests(tokenizer: CodeLlamaTokenizerFast, work: list[tuple[str, int]]) -> list[EngineRequest]:
    """`http_work` as the engine's requests: greedy, no stop ids (every request runs to its length)."""
    return [EngineRequest(tokenizer(prompt)["input_ids"], length, ()) for prompt, length in work]


def http_measurements(
    model: CodeLlamaForCausalLM, tokenizer: CodeLlamaTokenizerFast, rounds: int, threads: int
) -> dict:
    """Both servers up at once, each client count in each round, the order reversed every round; medians."""
    import serving_http as http

    ours, theirs = "codellama-serve", "transformers serve --continuous-batching"
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as servers:
        codellama_path, llama_path = http.export_checkpoints(model, tokenizer, Path(directory))
        port = http.free_port()
        command = http.codellama_serve(codellama_path, port)
        targets = {
            ours: (servers.enter_context(http.server(command, port, threads, Path(directory) / "o.log")), "bench")
        }
        port = http.free_port()
        command = http.transformers_serve(llama_path, port)
        if command is not None:
            url = servers.enter_context(http.server(command, port, threads, Path(directory) / "t.log"))
            targets[theirs] = (url, str(llama_path))
        for url, name in targets.values():  # warm-up
            asyncio.run(http.load_round(url, name, http_work(0, 32), 32))
        runs = [(name, workload, clients) for workload in WORKLOADS for name in targets for clients in CLIENT_COUNTS]
        samples: dict[tuple[str, str, int], list[dict]] = {run: [] for run in runs}
        for round_ in range(rounds):
            for name, workload, clients in runs if round_ % 2 == 0 else runs[::-1]:
                url, model_name = targets[name]
                work = WORKLOADS[workload](1 + 10 * round_ + clients, clients)
                samples[name, workload, clients].append(asyncio.run(http.load_round(url, model_name, work, clients)))
    return {
        workload: {
            name: {
                f"{clients} clients": {
                    "tokens/s": statistics.median(sample["tokens/s"] for sample in samples[name, workload, clients]),
                    "ttft ms": 1e3 * statistics.median(sample["ttft"] for sample in samples[name, workload, clients]),
                }
                for clients in CLIENT_COUNTS
            }
            for name in targets
        }
        for workload in WORKLOADS
    }


def repeating_cuts(tokenizer: CodeLlamaTokenizerFast, context: int, count: int, seed: int = 0) -> list[list[int]]:
    """Infilling prompts (PSM) from held-out real code: the middle is one whole line that also occurs in the
    ~300 characters before it or the ~120 after it; prompts leave room for a 48-token middle."""
    from transformers_codellama.training.tiny_model import stdlib_files

    rng = random.Random(seed)
    prompts: list[list[int]] = []
    texts = [path.read_text(encoding="utf-8") for path in stdlib_files()[1]]
    candidates = []
    for text in texts:
        lines = text.splitlines(keepends=True)
        offset = 0
        for index, line in enumerate(lines):
            before, after = text[max(0, offset - 300) : offset], text[offset + len(line) : offset + len(line) + 120]
            if len(line.strip()) >= 12 and (line in before or line in after) and index > 3:
                candidates.append((before, after))
            offset += len(line)
    rng.shuffle(candidates)
    for before, after in candidates:
        ids = tokenizer(before, suffix=after)["input_ids"]
        if len(ids) + 48 <= context:
            prompts.append(ids)
        if len(prompts) == count:
            break
    return prompts


async def _client(engine: TorchEngine, work: collections.deque[EngineRequest], latencies: list[float]) -> int:
    received = 0
    while work:
        request = work.popleft()
        start = time.perf_counter()
        received += sum([1 async for _ in engine.submit(request)])
        latencies.append(time.perf_counter() - start)
    return received


async def _round(engine: TorchEngine, requests: list[EngineRequest], clients: int) -> dict:
    work, latencies = collections.deque(requests), []
    drafted, accepted = engine.drafted, engine.accepted
    start = time.perf_counter()
    counts = await asyncio.gather(*[_client(engine, work, latencies) for _ in range(clients)])
    elapsed = time.perf_counter() - start
    return {
        "tokens/s per client": sum(counts) / elapsed / clients,
        "latency ms": 1e3 * statistics.median(latencies),
        "acceptance": (engine.accepted - accepted) / max(1, engine.drafted - drafted),
        "tokens": sum(counts),
    }


def speculation_comparison(model, workloads: dict[str, tuple[list[EngineRequest], int]], rounds: int) -> dict:
    """Speculation off and on, two engines over `model` (prefix cache off, so both do the same work), each
    workload `(requests, clients)` in alternating rounds; medians and the on/off ratio."""
    engines = {"off": TorchEngine(model, prefix_cache_tokens=0),
               "on": TorchEngine(model, prefix_cache_tokens=0, speculation=PromptLookup())}  # fmt: skip
    results: dict = {}
    for engine in engines.values():
        engine.start()
    try:

        async def run(engine: TorchEngine, requests: list[EngineRequest], clients: int) -> dict:
            return await _round(engine, requests, clients)

        for name, (requests, clients) in workloads.items():
            if len(requests) < clients:
                results[name] = f"skipped: {len(requests)} requests"
                continue
            samples: dict[str, list[dict]] = {"off": [], "on": []}
            asyncio.run(run(engines["on"], requests[:clients], clients))  # warm-up
            for round_ in range(rounds):
                for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                    samples[mode].append(asyncio.run(run(engines[mode], requests, clients)))
            table = {
                mode: {key: statistics.median(sample[key] for sample in samples[mode]) for key in samples[mode][0]}
                for mode in samples
            }
            table["on / off tokens/s per client"] = (
                table["on"]["tokens/s per client"] / table["off"]["tokens/s per client"]
            )
            table["on / off latency"] = table["on"]["latency ms"] / table["off"]["latency ms"]
            results[name] = table
    finally:
        for engine in engines.values():
            engine.stop()
    return results


def greedy_outputs(model: CodeLlamaForCausalLM, requests: list[EngineRequest]) -> list[list[int]]:
    engine = TorchEngine(model, prefix_cache_tokens=0)
    engine.start()

    async def all_of() -> list[list[int]]:
        async def one(request: EngineRequest) -> list[int]:
            return [token async for token in engine.submit(request)]

        return list(await asyncio.gather(*[one(request) for request in requests]))

    try:
        return asyncio.run(all_of())
    finally:
        engine.stop()


def lookup_ceiling(requests: list[EngineRequest], middles: list[list[int]], lookup: PromptLookup) -> float:
    """Tokens per step that `lookup`'s drafts would give over these greedy `middles` if verifying them were free:
    each step keeps its draft's longest run that the middle agrees with, plus one token. A speculative step costs at
    least a plain one, so no speed-up from prompt lookup on these requests can exceed this."""
    tokens = steps = 0
    for request, middle in zip(requests, middles):
        index, done = NgramIndex(request.prompt_ids, lookup.ngram), 0
        while done < len(middle):
            draft = index.draft(min(lookup.draft_tokens, len(middle) - done - 1))
            kept = next((i for i, token in enumerate(draft) if token != middle[done + i]), len(draft))
            index.extend(middle[done : done + kept + 1])
            done, steps = done + kept + 1, steps + 1
        tokens += len(middle)
    return tokens / max(1, steps)


def copies(prompt: list[int], middle: list[int], window: int = 6) -> bool:
    """Whether some `window` consecutive tokens of `middle` occur in `prompt` as they are."""
    seen = {tuple(prompt[i : i + window]) for i in range(len(prompt) - window + 1)}
    return any(tuple(middle[i : i + window]) in seen for i in range(len(middle) - window + 1))


def trained_model(scratch: Path) -> tuple[CodeLlamaForCausalLM, CodeLlamaTokenizerFast]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transformers_codellama.conversion.convert import convert
    from transformers_codellama.tiny_checkpoint import CONTEXT, write_meta_checkpoint

    meta = write_meta_checkpoint(scratch / "CodeLlama-tiny")
    convert(input_dir=meta, output_dir=scratch / "converted", dtype="float32", context_length=CONTEXT)
    return AutoModelForCausalLM.from_pretrained(scratch / "converted").eval(), AutoTokenizer.from_pretrained(
        scratch / "converted"
    )


def plot(results: dict, path: Path) -> None:
    """A row per workload: tokens/s and TTFT against clients, ours, the anchor and (tokens/s) the bare loop, the
    same work's limit and the engine in-process; PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(WORKLOADS), 2, figsize=(10, 4 * len(WORKLOADS)), squeeze=False)
    styles = {"codellama-serve": ("tab:blue", "o", "-"),
              "transformers serve --continuous-batching": ("tab:orange", "s", "--")}  # fmt: skip
    bare = [results["bare loop tokens/s"][f"batch {c}"] for c in CLIENT_COUNTS]
    for (rate, ttft), workload in zip(axes, WORKLOADS):
        for name, table in results["http"][workload].items():
            color, marker, line = styles[name]
            rate.plot(CLIENT_COUNTS, [table[f"{c} clients"]["tokens/s"] for c in CLIENT_COUNTS], color=color,
                      marker=marker, linestyle=line, label=name)  # fmt: skip
            ttft.plot(CLIENT_COUNTS, [table[f"{c} clients"]["ttft ms"] for c in CLIENT_COUNTS], color=color,
                      marker=marker, linestyle=line, label=name)  # fmt: skip
        rate.plot(CLIENT_COUNTS, bare, color="tab:green", marker="^", linestyle=":",
                  label="bare decode loop, no prefills")  # fmt: skip
        in_process = results["in-process"][workload]
        same_work = [in_process[f"{c} clients"]["same-work limit tokens/s"] for c in CLIENT_COUNTS]
        rate.plot(CLIENT_COUNTS, same_work, color="tab:red", marker="v", linestyle="-.",
                  label="same work's limit (prefills + loop)")  # fmt: skip
        engine = [in_process[f"{c} clients"]["engine in-process tokens/s (speculation off)"] for c in CLIENT_COUNTS]
        rate.plot(CLIENT_COUNTS, engine, color="tab:purple", marker="D", linestyle=(0, (1, 1)),
                  label="engine in-process (no HTTP, speculation off)")  # fmt: skip
        for axis, label in ((rate, "generated tokens/s"), (ttft, "median time to first token (ms)")):
            axis.set_xscale("log", base=2)
            axis.set_xticks(CLIENT_COUNTS, [str(c) for c in CLIENT_COUNTS])
            axis.set_xlabel("concurrent streaming clients")
            axis.set_ylabel(label)
            axis.set_ylim(bottom=0)
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize=8)
        rate.set_title(f"{workload}: throughput (dim-256, 4-layer model, CPU)")
        ttft.set_title(f"{workload}: time to first token")
    figure.tight_layout()
    for suffix in (".png", ".svg"):
        figure.savefig(path.with_suffix(suffix), dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per comparison; medians reported")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, here and in each server")
    parser.add_argument("--no-http", dest="http", action="store_false", help="skip the two servers")
    parser.add_argument("--no-speculation", dest="speculation", action="store_false", help="skip part 3")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(SHARED_DATA / "codellama.model"))
    torch.manual_seed(0)
    model = CodeLlamaForCausalLM(CodeLlamaConfig(**MODEL_SIZES)).eval()
    results: dict = {"model": MODEL_SIZES, "threads": args.threads}
    samples = {rows: [bare_loop(model, rows) for _ in range(args.rounds)] for rows in CLIENT_COUNTS}
    results["bare loop tokens/s"] = {f"batch {rows}": statistics.median(rates) for rows, rates in samples.items()}
    results["in-process"] = in_process_measurements(model, tokenizer, results["bare loop tokens/s"], args.rounds)
    if args.http:
        results["http"] = http_measurements(model, tokenizer, args.rounds, args.threads)
        results["ratios"] = {workload: ratios(results, workload) for workload in WORKLOADS}
    save("engine_speed", results)  # what is measured so far, should a later part fail
    if args.http:
        plot(results, PLOT)
    if args.speculation:
        results.update(speculation_measurements(model, args.rounds))
    path = save("engine_speed", results)
    print(json.dumps(results, indent=2))
    print(f"written to {path}")


def speculation_measurements(model: CodeLlamaForCausalLM, rounds: int) -> dict:
    """Part 3: speculation off and on, on the edit workload (the trained tiny model) and where nothing matches."""
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(SHARED_DATA / "codellama.model"))
    results = {}
    # Sampled at temperature 1 from random weights, the output never repeats an n-gram: nothing to draft.
    no_match = [EngineRequest(r.prompt_ids, r.max_new_tokens, (), SamplingParams(temperature=1.0, seed=index))
                for index, r in enumerate(editor_requests(tokenizer, 16, seed=5))]  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        trained, trained_tokenizer = trained_model(Path(scratch))
    stops = (trained_tokenizer.eot_id, trained_tokenizer.eos_token_id)
    cuts = repeating_cuts(trained_tokenizer, trained.config.max_position_embeddings, 480)
    edits = [EngineRequest(ids, 48, stops) for ids in cuts]
    # The tiny model writes the repeated line itself only now and then: the subset where its middle does copy
    # the prompt (6 tokens in a row or more) is the case where speculation can pay.
    middles = greedy_outputs(trained, edits)
    copying = [request for request, middle in zip(edits, middles) if copies(request.prompt_ids, middle)]
    copying_middles = [middle for request, middle in zip(edits, middles) if copies(request.prompt_ids, middle)]
    results["speculation, edit workload (trained tiny model)"] = {
        "requests": len(edits[:24]),
        "requests whose middle copies the prompt": f"{len(copying)}/{len(edits)}",
        "prompt-lookup ceiling, tokens per step (free verification)": {
            "all requests": lookup_ceiling(edits, middles, DEFAULT_LOOKUP),
            "middles that copy": lookup_ceiling(copying, copying_middles, DEFAULT_LOOKUP),
        },
        **speculation_comparison(trained, {"1 client": (edits[:24], 1), "4 clients": (edits[:24], 4),
                                           "1 client, middles that copy": (copying[:24], 1),
                                           "4 clients, middles that copy": (copying[:24], 4)}, rounds),
    }  # fmt: skip
    results["speculation, nothing matches (dim-256 random weights)"] = speculation_comparison(
        model, {"1 client": (no_match[:6], 1), "8 clients": (no_match, 8)}, rounds
    )
    return results


def ratios(results: dict, workload: str) -> dict:
    """codellama-serve's tokens/s against the bare loop and the same work's limit, and against the anchor (tokens/s
    and TTFT), at each client count of `workload`."""
    ours = results["http"][workload]["codellama-serve"]
    anchor = results["http"][workload].get("transformers serve --continuous-batching")
    table = {}
    for clients in CLIENT_COUNTS:
        key, rate = f"{clients} clients", ours[f"{clients} clients"]["tokens/s"]
        table[key] = {
            "ours / bare loop": rate / results["bare loop tokens/s"][f"batch {clients}"],
            "ours / same-work limit": rate / results["in-process"][workload][key]["same-work limit tokens/s"],
        }
        if anchor is not None:
            table[key]["ours / anchor tokens/s"] = rate / anchor[key]["tokens/s"]
            table[key]["ours / anchor ttft"] = ours[key]["ttft ms"] / anchor[key]["ttft ms"]
    return table


if __name__ == "__main__":
    main()
