"""`codellama-convert` at real layer shapes: peak memory and time against a plain `cp -r`, and start-up time.

    python benchmarks/bench_convert.py [--shapes 7B 70B] [--layers N] [--scratch DIR]

For each shape it writes a random bf16 checkpoint in Meta's layout with the converter's own writer
(`transformers_codellama.conversion.meta_writer`): 7B's layer shapes in two shards (8 layers, 3.5 GiB) and 70B's
(64 query and 8 key/value heads, FFN 28672) in eight shards (2 layers, 4.2 GiB). With the input in the page cache it
then times, each in a fresh process and each followed by `sync`, `cp -r --reflink=never` of the input and
`codellama-convert --input-dir ... --output-dir ...` (its console-script entry point; no `--verify`), alternating
them `--repeats` times and quoting medians. The converter's time is the whole command: interpreter start-up,
imports, the checks of the input, the weights, config, tokenizer, code files and model card, and the `sync` of its
output. Its peak RSS is read from `getrusage(RUSAGE_CHILDREN)` of a wrapper. Then it times `codellama-convert
--help`, and beside it the same `--help` through `python -m transformers_codellama.conversion....`, which imports
the package first and so registers with transformers (the path that imports torch and transformers before the
arguments parse; only the script skips the registration), and a bare import of the converter's
in-process path (`transformers_codellama.conversion.convert`: torch and transformers). Figures measured before the
converter was tuned are printed beside the new ones. Everything is written under a temporary
directory and deleted; nothing goes into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, save

from transformers_codellama.conversion.mapping import MetaParams, parse_params
from transformers_codellama.conversion.meta_writer import write_random_meta_checkpoint

# What the `codellama-convert` console script runs (independent of PATH), and the module the script used to be (whose
# `python -m` start registers with transformers).
CONVERT = [sys.executable, str(Path(__file__).resolve().parents[1] / "conversion" / "codellama-convert")]
CONVERT_MODULE = [sys.executable, "-m", "transformers_codellama.conversion.convert_codellama_weights_to_hf"]


@dataclass(frozen=True)
class Shape:
    """A benchmark checkpoint: a released size's layer shapes, fewer layers, Meta's shard count for the size."""

    params: dict
    layers: int
    shards: int

    def meta_params(self, layers: int | None) -> MetaParams:
        return parse_params({**self.params, "n_layers": layers or self.layers, "vocab_size": 32016})


# The released params.json fields that fix the layer shapes (Meta's 7B and 70B).
SHAPES = {
    "7B": Shape({"dim": 4096, "n_heads": 32, "multiple_of": 256, "rope_theta": 1e6}, layers=8, shards=2),
    "70B": Shape(
        {
            "dim": 8192,
            "n_heads": 64,
            "n_kv_heads": 8,
            "multiple_of": 4096,
            "ffn_dim_multiplier": 1.3,
            "rope_theta": 1e6,
        },
        layers=2,
        shards=8,
    ),
}
# Measured on the same checkpoints before the converter was tuned for real sizes (the targets' baseline), after
# its memory was bounded but before tensors were copied by the kernel and the command line started without torch
# (a busy machine: 31.0 s vs 2.9 s and 45.8 s vs 4.6 s), and with the kernel copies but everything in one process
# (torch and transformers imported before the weights; a quiet machine: 6.55 s vs 1.41 s and 7.75 s vs 1.67 s).
BEFORE = {
    "7B": {
        "peak_rss_mib": 893,
        "convert_over_cp": 4.9,
        "memory_bounded": {"peak_rss_mib": 490, "convert_over_cp": 10.7},
        "one_process": {"peak_rss_mib": 406, "convert_over_cp": 4.63},
    },
    "70B": {
        "peak_rss_mib": 2079,
        "memory_bounded": {"peak_rss_mib": 703, "convert_over_cp": 10.0},
        "one_process": {"peak_rss_mib": 406, "convert_over_cp": 4.64},
    },
    "import_seconds": 4.0,
    "help_module_seconds": 4.24,
}
TARGETS = {"7B": {"peak_rss_mib": 700}, "70B": {"peak_rss_mib": 1000}, "convert_over_cp": 3.0, "help_seconds": 1.5}

# Runs one command in a fresh wrapper process, so that the peak RSS is that command's alone; samples its RSS every
# 50 ms for the memory-over-time plot.
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


@dataclass
class Measured:
    seconds: float
    peak_rss_bytes: int
    timeline: list


def measure(command: list[str]) -> Measured:
    """Wall time (with a closing `sync`) and peak RSS of `command` in its own process, after flushing earlier writes."""
    os.sync()  # so that no contender pays for another's dirty pages
    synced = ["sh", "-c", '"$@" && sync', "sh", *command]
    result = subprocess.run([sys.executable, "-c", WRAPPER, *synced], capture_output=True, text=True, check=True)
    *_, timeline, last = result.stdout.strip().splitlines()
    seconds, peak, rc = last.split()
    if rc != "0":
        raise SystemExit(f"command failed ({rc}): {' '.join(command)}\n{result.stdout}{result.stderr}")
    return Measured(float(seconds), int(peak), json.loads(timeline))


def startup_seconds(command: list[str], repeats: int = 5) -> float:
    """Median wall time of a short command (start-up: interpreter and imports), nothing written, so no `sync`."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def build(root: Path, name: str, shape: Shape, layers: int | None) -> tuple[Path, int]:
    """Write the checkpoint for `shape` and read it once into the page cache; returns (directory, bytes)."""
    source = root / f"CodeLlama-{name}-bench"
    write_random_meta_checkpoint(
        source, shape.meta_params(layers), tokenizer_model=SHARED_DATA / "codellama.model", shards=shape.shards
    )
    subprocess.run(["cat", *map(str, source.iterdir())], stdout=subprocess.DEVNULL, check=True)  # warm cache
    return source, sum(p.stat().st_size for p in source.iterdir())


def run_shape(root: Path, name: str, shape: Shape, layers: int | None, repeats: int) -> tuple[dict, list]:
    """Copy and convert one checkpoint side by side, alternating; the result row and the converter's RSS timeline."""
    source, size = build(root, name, shape, layers)
    copies, conversions = [], []
    for _ in range(repeats):
        copies.append(measure(["cp", "-r", "--reflink=never", str(source), str(root / "copy")]))
        shutil.rmtree(root / "copy")
        conversions.append(measure([*CONVERT, "--input-dir", str(source), "--output-dir", str(root / "converted")]))
        shutil.rmtree(root / "converted")
    shutil.rmtree(source)
    copy = statistics.median(m.seconds for m in copies)
    convert = statistics.median(m.seconds for m in conversions)
    row = {
        "shards": shape.shards,
        "layers": layers or shape.layers,
        "input_gib": round(size / 2**30, 2),
        "repeats": repeats,
        "cp_seconds": round(copy, 2),
        "convert_seconds": round(convert, 2),
        "convert_over_cp": round(convert / copy, 2),
        "each_convert_over_cp": [round(c.seconds / p.seconds, 2) for p, c in zip(copies, conversions, strict=True)],
        "peak_rss_mib": round(max(m.peak_rss_bytes for m in conversions) / 2**20),
        "before": BEFORE.get(name, {}),
        "target_peak_rss_mib": TARGETS[name]["peak_rss_mib"],
    }
    return row, conversions[-1].timeline


def report(results: dict) -> None:
    print(f"\n{'shape':>5} {'input':>8} {'cp -r':>7} {'convert':>8} {'ratio':>6} {'peak RSS':>9}  before (RSS, ratio)")
    for name, row in results["runs"].items():
        before = row["before"]
        print(
            f"{name:>5} {row['input_gib']:>6.2f}Gi {row['cp_seconds']:>6.2f}s {row['convert_seconds']:>7.2f}s "
            f"{row['convert_over_cp']:>5.1f}x {row['peak_rss_mib']:>6}MiB  "
            f"({before.get('peak_rss_mib', '-')} MiB, {before.get('convert_over_cp', '-')}x)"
        )
    print(
        f"codellama-convert --help: {results['help_seconds']:.2f}s (target {TARGETS['help_seconds']} s; through "
        f"python -m, which registers: {results['help_module_seconds']:.2f}s, before {BEFORE['help_module_seconds']} s); "
        f"import of the converter: {results['import_seconds']:.2f}s (before: {BEFORE['import_seconds']} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--layers", type=int, default=None, help="layers per checkpoint (default: 8 for 7B, 2 for 70B)")
    parser.add_argument("--repeats", type=int, default=3, help="copies and conversions per shape, alternating")
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where to build the checkpoints (default: a temp dir)"
    )
    args = parser.parse_args()
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    results: dict = {"runs": {}, "timelines": {}, "targets": TARGETS}
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        for name in args.shapes:
            row, timeline = run_shape(Path(scratch), name, SHAPES[name], args.layers, args.repeats)
            results["runs"][name] = row
            results["timelines"][f"{name} shapes, {row['shards']} shards, {row['input_gib']} GiB"] = timeline
    results["help_seconds"] = round(startup_seconds([*CONVERT, "--help"]), 2)
    results["help_module_seconds"] = round(startup_seconds([*CONVERT_MODULE, "--help"]), 2)
    results["import_seconds"] = round(
        startup_seconds([sys.executable, "-c", "import transformers_codellama.conversion.convert"]), 2
    )
    report(results)
    save("convert", results)


if __name__ == "__main__":
    main()
