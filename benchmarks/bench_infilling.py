"""Single-line infilling evaluation (in the style of HumanEval single-line infilling), PSM and SPM, greedy.

    python benchmarks/bench_infilling.py                          # the package's embedded trained tiny model
    python benchmarks/bench_infilling.py --checkpoint CodeLlama-7b-hf --limit 1000   # any converted checkpoint
    python benchmarks/bench_infilling.py --weights run.safetensors   # weights from `python -m transformers_codellama.training.tiny_model`

Problems come from functions in the standard-library files the tiny model never trained on
(`transformers_codellama.training.tiny_model.stdlib_files()`): one non-blank line of the function body (not the `def`
line) is blanked; the prompt is the function's text before the line (prefix) and after it (suffix), both cut to
whole lines so that the prompt fits `--max-prompt-tokens`. The model generates the middle greedily until
`▁<EOT>` (or `</s>`, or `--max-new-tokens`), decoded as Meta decodes a middle.

Reported for each layout, beside a baseline that copies the line above the hole:

* `▁<EOT>`: the share of answers the model ended with `▁<EOT>` (a model that fails to stop runs into the suffix);
* exact match: the answer's first line equals the blanked line (trailing whitespace ignored);
* edit similarity: 1 - Levenshtein(answer line, blanked line) / max(their lengths), averaged.

Code Llama's paper reports single-line HumanEval infilling pass@1 (unit tests, not exact match) of 74-77% (PSM)
and 83% (SPM) for the 7B; its single-line MultiPL-E exact match for Python is 67.6% (PSM) and 72.7% (SPM).
Running this command on a converted 7B (`--checkpoint`, on a GPU) gives numbers on this task to compare.
"""

from __future__ import annotations

import argparse
import ast
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save

from transformers_codellama.stopping import INFILL, stop_ids
from transformers_codellama.tiny_checkpoint import CONTEXT, WEIGHTS_PATH
from transformers_codellama.training.tiny_model import stdlib_files


@dataclass(frozen=True)
class Problem:
    source: str  # file:line of the blanked line
    prefix: str
    middle: str  # the blanked line, with its newline
    suffix: str
    above: str  # the line above the hole (the baseline's answer)


def _functions(text: str) -> list[tuple[int, int]]:
    """(first line, last line), 1-based, of every function and method in `text` (decorators excluded)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    return [(node.lineno, node.end_lineno or node.lineno) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]  # fmt: skip


def problems(files: list[Path], *, seed: int, limit: int) -> list[Problem]:
    """One single-line problem per function (a random non-blank body line), `limit` functions drawn at random."""
    rng = random.Random(seed)
    found: list[Problem] = []
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        for first, last in sorted(_functions("".join(lines))):
            body = [i for i in range(first, last) if lines[i].strip()]  # 0-based indices after the def line
            if len(body) < 2:
                continue
            hole = rng.choice(body)
            found.append(Problem(f"{path.name}:{hole + 1}", "".join(lines[first - 1 : hole]), lines[hole],
                                 "".join(lines[hole + 1 : last]), lines[hole - 1]))  # fmt: skip
    rng.shuffle(found)
    return found[:limit]


def fit(problem: Problem, tokenizer: Any, budget: int) -> tuple[str, str] | None:
    """The problem's prefix and suffix cut to whole lines (far ends first) so both layouts' prompts fit `budget`."""
    before = problem.prefix.splitlines(keepends=True)
    after = problem.suffix.splitlines(keepends=True)
    while True:
        prefix, suffix = "".join(before), "".join(after)
        if len(tokenizer(prefix, suffix=suffix)["input_ids"]) <= budget:
            return prefix, suffix
        if not before:
            return None
        if len(before) > 1 and len(before) >= len(after):
            before = before[1:]
        elif after:
            after = after[:-1]
        else:
            before = before[1:]


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein distance / length of the longer string (1.0 for two empty strings)."""
    if not a and not b:
        return 1.0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1 - previous[-1] / max(len(a), len(b))


def _line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


def evaluate(model: Any, tokenizer: Any, cases: list[tuple[Problem, str, str]], *, suffix_first: bool,
             max_new_tokens: int) -> dict[str, float]:  # fmt: skip
    """Greedy middles for every case in one layout: shares of `▁<EOT>` endings and exact matches, mean similarity."""
    stops = stop_ids(tokenizer, INFILL)
    eot = exact = 0
    similarity: list[float] = []
    for problem, prefix, suffix in cases:
        prompt = tokenizer(prefix, suffix=suffix, suffix_first=suffix_first, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**prompt, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stops,
                                 pad_token_id=tokenizer.eos_token_id)  # fmt: skip
        generated = out[0, prompt["input_ids"].shape[1] :].tolist()
        eot += bool(generated) and generated[-1] == tokenizer.eot_id
        answer = _line(tokenizer.decode_infill(generated))
        truth = _line(problem.middle)
        exact += answer == truth
        similarity.append(edit_similarity(answer, truth))
    n = len(cases)
    return {"eot": eot / n, "exact": exact / n, "similarity": statistics.fmean(similarity)}


def baseline(cases: list[tuple[Problem, str, str]]) -> dict[str, float]:
    """Copy the line above the hole."""
    pairs = [(_line(problem.above), _line(problem.middle)) for problem, _, _ in cases]
    return {"eot": float("nan"), "exact": statistics.fmean(a == b for a, b in pairs),
            "similarity": statistics.fmean(edit_similarity(a, b) for a, b in pairs)}  # fmt: skip


def load(checkpoint: str | None, scratch: Path, weights: Path = WEIGHTS_PATH) -> tuple[Any, Any, str]:
    """A converted checkpoint, or tiny-model weights (default: the embedded ones) taken through Meta's layout and
    the real converter."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import transformers_codellama  # noqa: F401  # registers Code Llama with the Auto classes

    if checkpoint is None:
        from transformers_codellama.conversion.convert import convert
        from transformers_codellama.tiny_checkpoint import write_meta_checkpoint

        meta = write_meta_checkpoint(scratch / "CodeLlama-tiny", weights)
        convert(input_dir=meta, output_dir=scratch / "converted", dtype="float32", context_length=CONTEXT)
        checkpoint = str(scratch / "converted")
        name = "embedded tiny model" if weights == WEIGHTS_PATH else f"tiny model weights {weights}"
    else:
        name = checkpoint
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype="auto", device_map="auto").eval()
    if not tokenizer.supports_infilling:
        raise SystemExit(f"error: {name} cannot infill (its vocabulary has no ▁<PRE>/▁<SUF>/▁<MID>/▁<EOT>)")
    return model, tokenizer, name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="a converted checkpoint folder (default: the embedded tiny model)")
    source.add_argument("--weights", type=Path, default=WEIGHTS_PATH,
                        help="tiny-model weights written by the training script (default: the embedded ones)")  # fmt: skip
    parser.add_argument("--limit", type=int, default=300, help="problems (functions) to evaluate (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing functions and lines (default 0)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-prompt-tokens", type=int, default=None,
                        help=f"prompt budget (default: {CONTEXT} - max-new-tokens for the tiny model, else 4096)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--show", type=int, default=5, help="print this many answers (default 5)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()

    with tempfile.TemporaryDirectory(prefix="bench-infilling-") as scratch:
        model, tokenizer, name = load(args.checkpoint, Path(scratch), args.weights)
        budget = args.max_prompt_tokens or (CONTEXT - args.max_new_tokens if args.checkpoint is None else 4096)
        _, held_out = stdlib_files()
        cases = []
        for problem in problems(held_out, seed=args.seed, limit=args.limit):
            cut = fit(problem, tokenizer, budget)
            if cut is not None:
                cases.append((problem, *cut))
        print(f"model: {name}; {len(cases)} single-line problems from {len(held_out)} held-out stdlib files "
              f"(prompts <= {budget} tokens, greedy, <= {args.max_new_tokens} new tokens)\n")  # fmt: skip
        start = time.perf_counter()
        rows = {
            "PSM": evaluate(model, tokenizer, cases, suffix_first=False, max_new_tokens=args.max_new_tokens),
            "SPM": evaluate(model, tokenizer, cases, suffix_first=True, max_new_tokens=args.max_new_tokens),
            "copy the line above": baseline(cases),
        }
        elapsed = time.perf_counter() - start
    print("| answer | ends with ▁<EOT> | exact match | edit similarity |")
    print("|---|---|---|---|")
    for label, row in rows.items():
        eot = "n/a" if row["eot"] != row["eot"] else f"{row['eot']:.1%}"
        print(f"| {label} | {eot} | {row['exact']:.1%} | {row['similarity']:.3f} |")
    print(f"\n{2 * len(cases)} generations in {elapsed:.0f} s")
    if args.checkpoint is None and args.weights == WEIGHTS_PATH:  # the report shows the embedded model's numbers
        save("infilling", {"model": name, "problems": len(cases), "prompt_tokens_max": budget,
                           **{label: {k: v for k, v in row.items() if v == v} for label, row in rows.items()}})  # fmt: skip
    if args.show:
        print()
        for problem, prefix, suffix in cases[: args.show]:
            prompt = tokenizer(prefix, suffix=suffix, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**prompt, max_new_tokens=args.max_new_tokens, do_sample=False,
                                     eos_token_id=stop_ids(tokenizer, INFILL), pad_token_id=tokenizer.eos_token_id)  # fmt: skip
            middle = tokenizer.decode_infill(out[0, prompt["input_ids"].shape[1] :].tolist())
            print(f"{problem.source}\n  truth: {problem.middle.rstrip()!r}\n  PSM:   {middle!r}")


if __name__ == "__main__":
    sys.exit(main())
