"""Compare training recipes for the tiny model: train several variants side by side, evaluate each.

    python benchmarks/scan_tiny_recipes.py --device auto                    # every variant, in parallel
    python benchmarks/scan_tiny_recipes.py --device auto --only base L8     # some of them
    python benchmarks/scan_tiny_recipes.py --device auto --stdlib /path/to/python3.11/lib/python3.11

Each variant is `python -m transformers_codellama.training.tiny_model` with the arguments in `VARIANTS` (its log and weights
go to `--work`), then `benchmarks/bench_infilling.py --weights` on the CPU. On a CPU a variant takes about as long
as the shipped training run; with `--device auto` on a GPU all of them fit in a few minutes. GPU weights differ
from a CPU run's, so a recipe chosen here is still trained and measured on the CPU before it ships.

`--stdlib` points both steps at another Python's standard library folder (top-level `.py` files), so that a machine
with another Python version trains on the same files and is measured on the same held-out problems.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent

# name: training-script arguments. "base" is the shipped recipe before the 8-layer model.
VARIANTS: dict[str, list[str]] = {
    "base3200": ["--layers", "4", "--steps", "3200"],
    "base8200": ["--layers", "4", "--steps", "8200"],
    "spm09": ["--layers", "4", "--steps", "8200", "--line-spm-rate", "0.9"],
    "line085": ["--layers", "4", "--steps", "8200", "--mix", "0.1", "0.85", "0.05"],
    "eotw4": ["--layers", "4", "--steps", "8200", "--eot-weight", "4"],
    "L6": ["--layers", "6", "--steps", "5200"],
    "D192": ["--layers", "4", "--dim", "192", "--steps", "3900"],
    "L8": ["--layers", "8", "--steps", "4000"],
    "L6spm09": ["--layers", "6", "--steps", "5200", "--line-spm-rate", "0.9"],
    "L6eotw4": ["--layers", "6", "--steps", "5200", "--eot-weight", "4"],
}

# Runs a module or script with the standard library folder replaced (argv: STDLIB MODULE-OR-PATH ARGS...).
_WITH_STDLIB = """
import runpy, sys
from pathlib import Path
if sys.argv[1]:
    import transformers_codellama.stdlib_corpus as corpus
    corpus.STDLIB = Path(sys.argv[1])
target, sys.argv = sys.argv[2], sys.argv[2:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def _variant(name: str, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """Train, then evaluate, one variant in a background shell; its output goes to WORK/NAME.out."""
    weights = args.work / f"{name}.safetensors"
    stdlib = str(args.stdlib or "")
    train = [sys.executable, "-c", _WITH_STDLIB, stdlib, "transformers_codellama.training.tiny_model", *VARIANTS[name],
             "--device", args.device, "--threads", str(args.threads), "--minutes", str(args.minutes),
             "--output", str(weights), "--log", str(args.work / f"{name}.log")]  # fmt: skip
    evaluate = [sys.executable, "-c", _WITH_STDLIB, stdlib, str(BENCHMARKS / "bench_infilling.py"),
                "--weights", str(weights), "--threads", "1", "--show", "0"]  # fmt: skip
    out = (args.work / f"{name}.out").open("wb")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    script = f"{subprocess.list2cmdline(train)} && CUDA_VISIBLE_DEVICES= {subprocess.list2cmdline(evaluate)}"
    return subprocess.Popen(["bash", "-c", script], stdout=out, stderr=subprocess.STDOUT, env=env)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="variants to run (default: all)")
    parser.add_argument("--device", choices=("cpu", "auto"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per variant (default 1)")
    parser.add_argument("--minutes", type=float, default=28.0, help="training time limit per variant")
    parser.add_argument("--stdlib", type=Path, help="another Python's standard library folder")
    parser.add_argument("--work", type=Path, default=Path("scan-tiny-recipes"), help="folder for logs and weights")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    running = {name: _variant(name, args) for name in args.only or VARIANTS}
    for name, process in running.items():
        process.wait()
        output = (args.work / f"{name}.out").read_text(errors="replace").splitlines()
        log = (args.work / f"{name}.log").read_text().splitlines() if (args.work / f"{name}.log").exists() else []
        trained = [line for line in log if "trained" in line or "time limit" in line]
        table = [line for line in output if line.startswith("| ")]
        print(f"## {name}: {' '.join(VARIANTS[name])} (exit {process.returncode})")
        print("\n".join(trained + table) if table else "\n".join(output[-20:]), end="\n\n", flush=True)
    print(f"{len(running)} variants in {(time.time() - start) / 60:.1f} minutes")


if __name__ == "__main__":
    main()
