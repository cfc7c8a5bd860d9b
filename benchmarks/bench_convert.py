"""Memory and time of `codellama-convert` against a plain `cp -r` of the same input, side by side in one run.

    python benchmarks/bench_convert.py [--shards 1 2] [--layers 16] [--keep-going]

Builds a random bf16 checkpoint shaped like a small Code Llama (dim 2048, 16 layers, 16 heads, vocab 32016:
1.78 GiB) in a temporary directory for each shard count, then times `cp -r` of it and the converter (each in a
fresh process, peak RSS from `getrusage(RUSAGE_CHILDREN)` of a wrapper process), prints the ratios and what they
imply for 70B, and deletes everything. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save

SHARED_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "data" / "codellama.model"
ROW_SPLIT = ("wq", "wk", "wv", "w1", "w3", "output")
# Quoted from issue 4 (the converter that used to ship with transformers, on the 2-shard 1.78 GiB checkpoint).
QUOTED_OLD_SCRIPT = {"peak_rss_gb": 2.47, "time_vs_cp": 13}
# Measures one command in a fresh wrapper, so the peak RSS is that command's alone; also samples its RSS (with its
# children's) every 50 ms for the memory-over-time plot.
WRAPPER = """
import json, resource, subprocess, sys, time
import psutil
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:])
watched, timeline = psutil.Process(child.pid), []
while child.poll() is None:
    try:
        rss = sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)])
        timeline.append([round(time.perf_counter() - start, 3), round(rss / 2**20, 1)])
    except psutil.Error:
        pass
    time.sleep(0.05)
print(json.dumps(timeline))
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, child.returncode)
"""


def write_checkpoint(directory: Path, *, shards: int, dim: int, layers: int, heads: int, vocab: int) -> int:
    """Random bf16 Meta-layout checkpoint split like Meta's model-parallel ranks; returns its size in bytes."""
    directory.mkdir(parents=True)
    hidden = 256 * -(-int(2 * 4 * dim / 3) // 256)
    full = {"tok_embeddings.weight": (vocab, dim), "norm.weight": (dim,), "output.weight": (vocab, dim)}
    for i in range(layers):
        for name, shape in {"attention.wq": (dim, dim), "attention.wk": (dim, dim), "attention.wv": (dim, dim),
                            "attention.wo": (dim, dim), "feed_forward.w1": (hidden, dim), "feed_forward.w2": (dim, hidden),
                            "feed_forward.w3": (hidden, dim), "attention_norm": (dim,), "ffn_norm": (dim,)}.items():  # fmt: skip
            full[f"layers.{i}.{name}.weight"] = shape
    states: list[dict[str, torch.Tensor]] = [{} for _ in range(shards)]
    for name, shape in full.items():
        tensor = (torch.randn(shape) * 0.02).to(torch.bfloat16)
        role = name.split(".")[-2]
        axis = None if len(shape) == 1 else (0 if role in ROW_SPLIT else 1)
        parts = [tensor] * shards if axis is None else tensor.chunk(shards, dim=axis)
        for state, part in zip(states, parts, strict=True):
            state[name] = part.clone()
    for index, state in enumerate(states):
        torch.save(state, directory / f"consolidated.{index:02d}.pth")
    del states
    params = {
        "dim": dim,
        "n_layers": layers,
        "n_heads": heads,
        "multiple_of": 256,
        "norm_eps": 1e-5,
        "rope_theta": 1e6,
        "vocab_size": vocab,
    }
    (directory / "params.json").write_text(json.dumps(params))
    shutil.copyfile(SHARED_TOKENIZER, directory / "tokenizer.model")
    return sum(p.stat().st_size for p in directory.iterdir())


def measure(command: list[str], timelines: dict | None = None, label: str = "") -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of `command` run in its own process, after flushing earlier writes."""
    os.sync()  # so neither contender is throttled by the other's dirty pages
    result = subprocess.run([sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, check=True)
    *_, timeline, last = result.stdout.strip().splitlines()
    seconds, peak, rc = last.split()
    if rc != "0":
        raise SystemExit(f"command failed ({rc}): {' '.join(command)}\n{result.stdout}{result.stderr}")
    if timelines is not None:
        timelines[label] = json.loads(timeline)
    return float(seconds), int(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where to build the checkpoints (default: a temp dir)"
    )
    args = parser.parse_args()
    env_note = "HF_HUB_DISABLE_PROGRESS_BARS=1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    rows = []
    timelines: dict[str, list] = {}
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        root = Path(scratch)
        for shards in args.shards:
            source = root / f"CodeLlama-bench-{shards}"
            size = write_checkpoint(source, shards=shards, dim=2048, layers=args.layers, heads=16, vocab=32016)
            # Warm the page cache, so both contenders read the input from memory alike.
            subprocess.run(["cat", *map(str, source.iterdir())], stdout=subprocess.DEVNULL, check=True)
            cp_seconds, _ = measure(["cp", "-r", str(source), str(root / "copy")])
            shutil.rmtree(root / "copy")
            cp_sync, _ = measure(["sh", "-c", f"cp -r --reflink=never '{source}' '{root / 'copy'}' && sync"])
            convert = [sys.executable, "-m", "transformers_codellama.conversion.convert_codellama_weights_to_hf",
                       "--input-dir", str(source), "--output-dir", str(root / "converted")]  # fmt: skip
            seconds, peak = measure(convert, timelines, f"{shards} shard(s), {size / 2**30:.2f} GiB")
            convert_sync, _ = measure(["sh", "-c", f"rm -rf '{root / 'converted'}' && {' '.join(convert)} && sync"])
            startup, _ = measure([sys.executable, "-c", "import transformers_codellama.conversion.convert"])
            rows.append((shards, size, cp_seconds, seconds, peak, cp_sync, convert_sync, startup))
            for path in (source, root / "copy", root / "converted"):
                shutil.rmtree(path)
    print(f"\n{'shards':>6} {'input':>9} {'cp -r':>8} {'convert':>8} {'ratio':>6} {'peak RSS':>9}   ({env_note})")
    for shards, size, cp_seconds, seconds, peak, cp_sync, convert_sync, startup in rows:
        print(
            f"{shards:>6} {size / 2**30:>7.2f}Gi {cp_seconds:>7.2f}s {seconds:>7.2f}s {seconds / cp_seconds:>5.1f}x "
            f"{peak / 2**20:>6.0f}MiB | with sync: cp {cp_sync:.2f}s, convert {convert_sync:.2f}s "
            f"({convert_sync / cp_sync:.1f}x) | interpreter + imports alone: {startup:.2f}s"
        )
    print(f"quoted from issue 4, old transformers script (2 shards): peak RSS {QUOTED_OLD_SCRIPT['peak_rss_gb']} GB, "
          f"{QUOTED_OLD_SCRIPT['time_vs_cp']}x cp -r")  # fmt: skip
    # 70B: memory is the interpreter plus one layer's mapped slices plus the largest merged tensor, not the model.
    shards, size, cp_seconds, seconds, peak, *_ = rows[-1]
    layer_bytes = 2 * (2 * 8192 * 8192 + 2 * 1024 * 8192 + 3 * 8192 * 28672)
    largest = 2 * 32016 * 8192
    bench_layer = 2 * (4 * 2048 * 2048 + 3 * 2048 * 5632)
    base = peak - max(bench_layer, 2 * 32016 * 2048) - 2 * 32016 * 2048
    estimate_gib = (base + layer_bytes + largest) / 2**30
    save(
        "convert",
        {
            "runs": {
                f"{s} shard(s)": {
                    "input GiB": round(z / 2**30, 2),
                    "cp -r s": round(c, 2),
                    "convert s": round(t, 2),
                    "ratio (target <= 5)": round(t / c, 1),
                    "peak RSS MiB (target <= 700 MB)": round(p / 2**20),
                    "with sync: cp s": round(cs, 2),
                    "with sync: convert s": round(ts, 2),
                    "with sync: ratio": round(ts / cs, 1),
                    "interpreter + imports alone s": round(st, 2),
                }
                for s, z, c, t, p, cs, ts, st in rows
            },
            "quoted, old transformers script (2 shards)": QUOTED_OLD_SCRIPT,
            "70B estimate: peak RSS GiB": round(estimate_gib, 1),
            "timelines": timelines,
        },
    )
    print(f"70B estimate: peak RSS ~{(base + layer_bytes + largest) / 2**30:.1f} GiB (interpreter {base / 2**20:.0f} MiB + one "
          f"80-layer layer {layer_bytes / 2**30:.2f} GiB + largest tensor {largest / 2**30:.2f} GiB; the old script: ~140 GB); "
          f"time ~{seconds / size * 129 * 2**30 / 60:.0f} min at this machine's {size / seconds / 2**30:.2f} GiB/s")  # fmt: skip


if __name__ == "__main__":
    main()
