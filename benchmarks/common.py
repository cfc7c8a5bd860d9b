"""Helpers shared by the benchmarks: real code to measure on, interleaved timing, medians and reporting."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR", REPO / "benchmarks" / "results"))
SHARED_DATA: Path  # read from the tests on first use, by `__getattr__` below


def __getattr__(name: str) -> object:
    # Where Meta's real tokenizer models are is the tests' fact (`tests/real_data.py`), read there on first use:
    # real_data imports the package (torch, transformers), which `run_all.py --report` does not need.
    if name == "SHARED_DATA":
        from real_data import SHARED_DATA

        return SHARED_DATA
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def real_code(megabytes: float) -> list[str]:
    """Python standard library sources (whole files, sorted) adding up to about `megabytes` MB."""
    from transformers_codellama.stdlib_corpus import stdlib_sources

    return stdlib_sources(max_bytes=int(megabytes * 1e6))


def alternating(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function over `repeats` rounds, the order reversed every round (ABBA), after a warm-up.

    Contenders measured in the same rounds see the same machine noise, so their ratios hold on a busy machine.
    """
    samples: dict[str, list[float]] = {name: [] for name in functions}
    items = list(functions.items())
    for function in functions.values():
        function()
    for round_ in range(repeats):
        for name, function in items if round_ % 2 == 0 else items[::-1]:
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


# The model the generation benchmarks time: small enough for a 2-core CPU, large enough that the forward pass (not
# Python overhead) dominates.
MODEL_SIZES = {
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
}


def generation_arguments(description: str | None) -> argparse.Namespace:
    """The command line the generation benchmarks share; sets torch's thread count from it."""
    import torch

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per call (forced)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved repeats; medians are reported")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 keeps timings steady on a busy machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def generation_results(args: argparse.Namespace, times: dict[str, float], **measured: object) -> dict[str, object]:
    """The results a generation benchmark saves: the model, the run's settings, the median times and what it measured."""
    return {
        "model": MODEL_SIZES,
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "median_seconds": times,
        **measured,
    }


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def save(name: str, results: dict) -> Path:
    """Write a benchmark's results as JSON for the report, with the machine and the day (UTC) they were measured."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    path.write_text(json.dumps({"machine": machine(), "date": today, **results}, indent=2) + "\n")
    return path


__all__ = [
    "MODEL_SIZES",
    "REPO",
    "RESULTS_DIR",
    "SHARED_DATA",
    "alternating",
    "generation_arguments",
    "generation_results",
    "machine",
    "real_code",
    "save",
]
