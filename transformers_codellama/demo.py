"""`codellama-demo`: the whole path from Meta's checkpoint format to completion, infilling and chat, in one command.

With no arguments it needs no download and no weights of yours: it writes the package's small trained Code Llama
(1.86M parameters, trained for minutes on part of Python's standard library, shipped with the package) as a
checkpoint in Meta's layout, converts it with the real converter, loads it through `AutoTokenizer`,
`AutoModelForCausalLM` and `pipeline`, and runs a completion and an infilling prompt, showing what it filled in.
It writes Python-shaped code, not good code. `--random-weights` runs an Instruct-shaped checkpoint with random
weights instead, which also shows the chat path (its output is noise).

On real weights:

    codellama-convert --input-dir CodeLlama-7b-Instruct --output-dir CodeLlama-7b-Instruct-hf
    codellama-demo --checkpoint CodeLlama-7b-Instruct-hf
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .tiny_checkpoint import CONTEXT, write_meta_checkpoint
from .tiny_tokenizer import TINY_MODEL_PATH

T = TypeVar("T")

# One line of a method left for the model to write (it should close the file, then stop).
INFILL_PROMPT = "    def __len__(self):\n<FILL_ME>\n    def __iter__(self):\n        return iter(self._items)\n"


class _Steps:
    """Runs named steps, timing each, for the closing table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float]] = []

    def run(self, name: str, function: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = function()
        self.rows.append((name, time.perf_counter() - start))
        return result

    def table(self) -> str:
        width = max(len(name) for name, _ in self.rows)
        lines = [f"| {'step':{width}} | seconds |", f"|{'-' * (width + 2)}|---------|"]
        lines += [f"| {name:{width}} | {seconds:7.2f} |" for name, seconds in self.rows]
        return "\n".join(lines)


def describe_layout(tokenizer: Any, ids: Sequence[int]) -> str:
    """The infilling prompt's tokens, the control pieces named: `<s> ▁<PRE> [prefix…] ▁<SUF> [suffix…] ▁<MID>`."""
    names = {tokenizer.bos_token_id: "BOS", tokenizer.prefix_id: "▁<PRE>", tokenizer.suffix_id: "▁<SUF>",
             tokenizer.middle_id: "▁<MID>"}  # fmt: skip
    out: list[str] = []
    run: list[int] = []
    after: int | None = None  # the control piece the current run of text follows

    def text_of(tokens: list[int]) -> str:
        # The suffix is encoded without SentencePiece's dummy prefix, so it is decoded the way a middle is.
        return tokenizer.decode_infill(tokens) if after == tokenizer.suffix_id else tokenizer.decode(tokens)

    for token in ids:
        if token in names:
            if run:
                out.append(f"[{len(run)} text tokens: {text_of(run)!r}]")
                run = []
            out.append(f"{names[token]}({token})")
            after = token
        else:
            run.append(token)
    if run:
        out.append(f"[{len(run)} text tokens: {text_of(run)!r}]")
    return " ".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codellama-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="a converted Hugging Face checkpoint to run instead of the tiny one")
    source.add_argument("--meta-dir", help="a Meta checkpoint directory to convert first (e.g. CodeLlama-7b-Instruct)")
    source.add_argument(
        "--random-weights", action="store_true", help="a tiny Instruct-shaped model with random weights (shows chat)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=24, help="tokens to generate per prompt (default 24)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `codellama-demo`."""
    args = build_parser().parse_args(argv)
    from huggingface_hub.utils import disable_progress_bars
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
    from transformers.utils import logging

    disable_progress_bars()  # the step table says how long each step took
    logging.disable_progress_bar()

    from .conversion.convert import convert
    from .conversion.mapping import parse_params
    from .conversion.meta_writer import write_random_meta_checkpoint

    tiny = parse_params({"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "multiple_of": 32, "rope_theta": 1e6})

    steps = _Steps()
    with tempfile.TemporaryDirectory(prefix="codellama-demo-") as scratch:
        work = Path(scratch)
        if args.checkpoint:
            checkpoint = Path(args.checkpoint)
        else:
            if args.meta_dir:
                meta = Path(args.meta_dir)
                print("Converting your Meta checkpoint with the real converter.")
                convert_kwargs: dict[str, Any] = {}
            elif args.random_weights:
                print("This demo runs on a tiny model with RANDOM weights: its generations are noise, not code.")
                meta = steps.run(
                    "write tiny Meta checkpoint",
                    lambda: write_random_meta_checkpoint(
                        work / "CodeLlama-tiny-Instruct", tiny, tokenizer_model=TINY_MODEL_PATH, shards=2
                    ),
                )
                convert_kwargs = {"variant": "instruct"}
            else:
                print(
                    "This demo runs the package's tiny trained Code Llama (1.86M parameters, minutes of training on "
                    "the standard library): Python-shaped code, not good code."
                )
                meta = steps.run("write tiny Meta checkpoint", lambda: write_meta_checkpoint(work / "CodeLlama-tiny"))
                convert_kwargs = {"variant": "base", "context_length": CONTEXT}  # the context it was trained at
            checkpoint = work / "converted"
            result = steps.run(
                "convert (codellama-convert --verify)",
                lambda: convert(input_dir=meta, output_dir=checkpoint, verify=True, **convert_kwargs),
            )
            print(f"Converter: {result.summary()}")
        tokenizer = steps.run("AutoTokenizer.from_pretrained", lambda: AutoTokenizer.from_pretrained(checkpoint))
        model = steps.run(
            "AutoModelForCausalLM.from_pretrained", lambda: AutoModelForCausalLM.from_pretrained(checkpoint)
        )
        print(f"Loaded {type(tokenizer).__name__} and {type(model).__name__} ({model.config.variant} variant).")
        generator = steps.run(
            "pipeline('text-generation')", lambda: pipeline("text-generation", model=model, tokenizer=tokenizer)
        )
        greedy = {"max_new_tokens": args.max_new_tokens, "do_sample": False}

        prompt = "def fibonacci(n):\n"
        completion = steps.run("completion", lambda: generator(prompt, **greedy)[0]["generated_text"])
        print(f"\n== completion\n{completion!r}")

        if tokenizer.supports_infilling:
            infill = INFILL_PROMPT
            print(f"\n== infilling\nprompt layout: {describe_layout(tokenizer, tokenizer(infill)['input_ids'])}")
            middle = steps.run(
                "infilling", lambda: generator(infill, return_full_text=False, **greedy)[0]["generated_text"]
            )
            print(f"middle (stops at ▁<EOT>): {middle!r}")
            print("filled in:\n" + infill.replace(tokenizer.fill_token, middle))
        else:
            print("\n== infilling: skipped, this model cannot infill (Code Llama 34B and Python models cannot)")

        if tokenizer.chat_template:
            messages = [{"role": "user", "content": "Write a function that reverses a string."}]
            reply = steps.run("chat", lambda: generator(messages, **greedy)[0]["generated_text"][-1]["content"])
            print(f"\n== chat\nassistant: {reply!r}")
        else:
            print(
                "\n== chat: skipped, this checkpoint has no chat template (only Instruct models do; try --random-weights)"
            )
    print("\n" + steps.table())


if __name__ == "__main__":
    main()
