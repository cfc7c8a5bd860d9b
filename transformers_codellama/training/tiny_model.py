"""The script that trains the package's small Code Llama (the demo's and the server's default model).

`python -m transformers_codellama.training.tiny_model` trains a Code-Llama-shaped model (Llama architecture, the package's
own 1000-piece tokenizer with the infilling pieces) on part of Python's standard library, with FIM examples from
`transformers_codellama.training.fim` and `transformers.Trainer`, on a CPU, seeded. It writes the weights in Meta's layout
(parameter names, interleaved rotary rows, bfloat16) to `data/tiny_codellama.safetensors`, which ships with the
package, and its log to `data/tiny_codellama_training.log`. The shipped model's shape (`PARAMS`, `CONTEXT`) and
the writer of its Meta checkpoint folder for `codellama-convert` are in `transformers_codellama.tiny_checkpoint`.

The training data mixes the paper's recipe with the single-line task the model is evaluated on: each example is
a window of a few consecutive lines of a training file (at most `CONTEXT` tokens), laid out as

* a random character-level split (`draw_split`, as the paper trains) in 20% of the windows, half PSM, half SPM,
* one whole line as the middle (the HumanEval single-line infilling task) in 70%, 70% of them in SPM (the layout
  in which stopping is hard to learn: the middle continues the prefix with no marker between them),
* left to right, untransformed, in 10%.

Short windows give many middles (and many `▁<EOT>` targets)
per token of compute, and line-sized middles teach the stop the evaluation asks for. Each pass over the files draws
new windows and new splits.

Training runs with two torch threads by default and takes about 25 minutes on a quiet 2-core CPU (0.37 s per
step of 32 examples for the shipped 8-layer model). On a CPU shared with other jobs two threads slow down badly
(threads wait at OpenMP barriers for a busy core: 1.75 s per step while a test suite ran beside it), and `--minutes`
stops the run early; `--threads 1` is steadier there but slower.
`--device auto` trains on a GPU to compare recipes quickly (`benchmarks/scan_tiny_recipes.py`); its weights are
not the CPU run's, so a recipe is still trained and measured on the CPU before it ships.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..conversion.mapping import (
    config_kwargs,
    hf_name,
    max_context,
    meta_shapes,
    parse_params,
    rotary_heads,
    unpermute_rotary,
)
from ..stdlib_corpus import stdlib_paths
from ..tiny_checkpoint import CONTEXT, PARAMS, WEIGHTS_PATH
from ..tiny_tokenizer import TINY_MODEL_PATH
from .fim import FimSplit, draw_split, fim_layouts

LOG_PATH = WEIGHTS_PATH.with_name("tiny_codellama_training.log")

SEED = 20261129
# Fractions of windows laid out as a random character split, a single whole line, or left to right.
MIX = {"char": 0.2, "line": 0.7, "plain": 0.1}
# Share of SPM among the single-line examples (character splits use the paper's half and half).
LINE_SPM_RATE = 0.7


# ------------------------------------------------------------------------------------------------------ data
def stdlib_files() -> tuple[list[Path], list[Path]]:
    """The standard library's top-level modules, split into (training, held out) by a hash of the file name.

    One file in five is held out; the split depends on the name only, so it is the same on every machine.
    """
    paths = stdlib_paths(recursive=False)
    held_out = [path for path in paths if zlib.crc32(path.name.encode()) % 5 == 0]
    return [path for path in paths if path not in held_out], held_out


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _windows(text: str, rng: random.Random, max_chars: int) -> list[str]:
    """Consecutive whole-line windows of `text`, each of a random size up to `max_chars` characters."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    start = rng.randrange(min(len(lines), 8) or 1)
    while start < len(lines):
        budget = rng.randint(max_chars // 4, max_chars)
        end, size = start, 0
        while end < len(lines) and size + len(lines[end]) <= budget:
            size += len(lines[end])
            end += 1
        end = max(end, start + 1)
        window = "".join(lines[start:end])
        if window.strip():
            out.append(window)
        start = end
    return out


def line_split(text: str, rng: random.Random, *, suffix_first: bool) -> FimSplit | None:
    """`text` with one of its non-blank lines (and its newline) as the middle; None if all lines are blank."""
    lines = text.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if line.strip()]
    if not candidates:
        return None
    i = rng.choice(candidates)
    return FimSplit("".join(lines[:i]), lines[i], "".join(lines[i + 1 :]), suffix_first)


def training_examples(texts: Sequence[str], tokenizer: Any, *, seed: int, context: int,
                      mix: dict[str, float] | None = None, line_spm_rate: float = LINE_SPM_RATE,
                      ) -> list[dict[str, Any]]:  # fmt: skip
    """One pass over `texts`: windows laid out per `mix` (default `MIX`), examples longer than `context` dropped.

    `line_spm_rate` is the share of SPM among the single-line examples.
    """
    mix = mix or MIX
    rng = random.Random(seed)
    splits: list[FimSplit] = []
    plain: list[str] = []
    for text in texts:
        for window in _windows(text, rng, max_chars=int(context * 2.4)):
            kind = rng.choices(list(mix), weights=list(mix.values()))[0]
            suffix_first = rng.random() < (line_spm_rate if kind == "line" else 0.5)
            if kind == "plain":
                plain.append(window)
                continue
            if kind == "line":
                split = line_split(window, rng, suffix_first=suffix_first)
            else:
                split = draw_split(window, rng, spm_rate=0.5)
            if split is not None:
                splits.append(split)
    examples = fim_layouts(tokenizer, splits)
    if plain:
        encoded = tokenizer(plain)["input_ids"]
        for ids in encoded:
            ids = [*ids, tokenizer.eos_token_id]
            examples.append({"input_ids": ids, "labels": list(ids), "fim": "plain", "prompt_length": 1})
    examples = [example for example in examples if len(example["input_ids"]) <= context]
    rng.shuffle(examples)
    return examples


# ------------------------------------------------------------------------------------------------------ model
# Meta's names, rotary layout and FFN width come from the converter's own tables (`conversion.mapping`): the tiny
# model is saved laid out as the converter reads.
def hf_config(params: dict[str, Any], vocab_size: int) -> Any:
    """The `CodeLlamaConfig` that `codellama-convert` writes for `params` (so training and conversion agree)."""
    from ..configuration_code_llama import CodeLlamaConfig

    meta = parse_params(params)
    context = max_context(meta.model_size, "base")
    return CodeLlamaConfig(
        **config_kwargs(meta, vocab_size=vocab_size, max_position_embeddings=context, dtype=torch.float32)
    )


def meta_state_dict(model: Any, params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's weights under Meta's names and rotary layout, in bfloat16 (as Meta ships them)."""
    meta = parse_params(params)
    state = model.state_dict()
    names = {name: str(hf_name(name)) for name in meta_shapes(meta, state["model.embed_tokens.weight"].shape[0])}
    if set(names.values()) != set(state):
        raise ValueError(f"the model's weights do not match {params}: {sorted(set(names.values()) ^ set(state))}")
    out: dict[str, torch.Tensor] = {}
    for meta_name, name in names.items():
        tensor, heads = state[name], rotary_heads(meta_name, meta)
        if heads is not None:
            tensor = unpermute_rotary(tensor, heads)
        out[meta_name] = tensor.detach().to(torch.bfloat16).contiguous()
    return out


# ------------------------------------------------------------------------------------------------------ training
def eot_weighted_loss(eot_id: int, weight: float) -> Any:
    """A `Trainer(compute_loss_func=...)` loss: next-token cross-entropy with `▁<EOT>` targets weighted by `weight`
    (a knob for recipe comparisons: the shipped model uses the plain loss)."""

    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs.logits[:, :-1].float()
        targets = labels[:, 1:].reshape(-1)
        token_loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets, ignore_index=-100, reduction="none"
        )
        weights = torch.where(targets == eot_id, weight, 1.0) * (targets != -100)
        return (token_loss * weights).sum() / weights.sum()

    return loss


class _Log:
    def __init__(self, path: Path | None) -> None:
        self.handle = path.open("w", encoding="utf-8") if path else None
        self.start = time.time()

    def __call__(self, message: str) -> None:
        line = f"[{time.time() - self.start:7.1f}s] {message}"
        print(line, flush=True)
        if self.handle:
            self.handle.write(line + "\n")
            self.handle.flush()


def _grouped_by_length(arguments: type) -> dict[str, Any]:
    """Batches of similar lengths (little compute spent on padding), under either transformers spelling."""
    fields = getattr(arguments, "__dataclass_fields__", {})
    if "train_sampling_strategy" in fields:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m transformers_codellama.training.tiny_model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--steps", type=int, default=4000, help="optimizer steps (default 4000)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (cosine, 3%% warm-up)")
    parser.add_argument("--minutes", type=float, default=28.0, help="stop training after this many minutes")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (2; 1 is more robust on a CPU shared with other jobs)"
    )
    parser.add_argument("--dim", type=int, default=PARAMS["dim"])
    parser.add_argument("--layers", type=int, default=PARAMS["n_layers"])
    parser.add_argument("--heads", type=int, default=PARAMS["n_heads"])
    parser.add_argument("--context", type=int, default=CONTEXT)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--mix", type=float, nargs=3, metavar=("CHAR", "LINE", "PLAIN"), default=list(MIX.values()),
                        help="weights of character-split, single-line and left-to-right windows (default %(default)s)")  # fmt: skip
    parser.add_argument("--line-spm-rate", type=float, default=LINE_SPM_RATE,
                        help="share of SPM among single-line examples (default %(default)s)")  # fmt: skip
    parser.add_argument("--eot-weight", type=float, default=1.0,
                        help="weight of ▁<EOT> targets in the loss, relative to other tokens (default 1: plain loss)")  # fmt: skip
    parser.add_argument("--device", choices=("cpu", "auto"), default="cpu",
                        help="cpu (default; the shipped model is trained on a CPU) or auto (a GPU if there is one, "
                        "to compare recipes quickly: its weights differ from a CPU run's)")  # fmt: skip
    parser.add_argument("--output", type=Path, default=WEIGHTS_PATH, help="weights file to write")
    parser.add_argument("--log", type=Path, default=LOG_PATH, help="log file to write")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Train the tiny model (`python -m transformers_codellama.training.tiny_model`)."""
    args = build_parser().parse_args(argv)
    from safetensors.torch import save_file
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    from ..modeling_code_llama import CodeLlamaForCausalLM
    from ..tokenization_code_llama_fast import CodeLlamaTokenizerFast
    from .fim_collator import FimDataCollator

    torch.set_num_threads(args.threads)
    log = _Log(args.log)
    log(f"command: {' '.join(sys.argv)}")
    log(f"torch {torch.__version__}, python {sys.version.split()[0]}, threads {args.threads}")
    params = {**PARAMS, "dim": args.dim, "n_layers": args.layers, "n_heads": args.heads, "n_kv_heads": args.heads}
    set_seed(args.seed)
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(TINY_MODEL_PATH))
    train_files, held_out = stdlib_files()
    log(f"stdlib: {len(train_files)} training files, {len(held_out)} held out: {' '.join(p.name for p in held_out)}")
    texts = [_read(path) for path in train_files]

    needed = args.steps * args.batch_size
    examples: list[dict[str, Any]] = []
    epoch = 0
    while len(examples) < needed:  # every pass draws new windows and new splits
        examples += training_examples(texts, tokenizer, seed=args.seed + epoch, context=args.context,
                                      mix=dict(zip(MIX, args.mix)), line_spm_rate=args.line_spm_rate)  # fmt: skip
        epoch += 1
    examples = examples[:needed]
    counts = {kind: sum(example["fim"] == kind for example in examples) for kind in ("psm", "spm", "plain")}
    tokens = sum(len(example["input_ids"]) for example in examples)
    log(f"data: {len(examples)} examples from {epoch} passes, {tokens} tokens, {counts}")

    eot_id = tokenizer.eot_id
    assert eot_id is not None  # the tiny tokenizer has the infilling pieces
    config = hf_config(params, vocab_size=len(tokenizer))
    model = CodeLlamaForCausalLM(config)
    log(f"model: {params}, {sum(p.numel() for p in model.parameters())} parameters, context {args.context}")

    deadline = time.time() + args.minutes * 60

    class TimeLimit(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.time() > deadline:
                log(f"time limit reached at step {state.global_step}")
                control.should_training_stop = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            logs = kwargs.get("logs")
            if logs:
                log(f"step {state.global_step}: {json.dumps({k: round(v, 5) for k, v in logs.items()})}")

    training_args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="tiny-model-run-"),  # nothing is saved there (save_strategy="no")
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, int(0.03 * args.steps)),
        weight_decay=0.1,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        logging_steps=50,
        save_strategy="no",
        report_to=[],
        use_cpu=args.device == "cpu",
        seed=args.seed,
        data_seed=args.seed,
        remove_unused_columns=False,
        **_grouped_by_length(TrainingArguments),
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=examples,  # a list is a map-style dataset
        data_collator=FimDataCollator(),
        callbacks=[TimeLimit()],
        compute_loss_func=eot_weighted_loss(eot_id, args.eot_weight) if args.eot_weight != 1 else None,
    )
    start = time.time()
    trainer.train()
    log(f"trained {trainer.state.global_step} steps in {(time.time() - start) / 60:.1f} minutes")
    tensors = meta_state_dict(model, params)
    metadata = {"params": json.dumps(params), "context": str(args.context), "seed": str(args.seed),
                "steps": str(trainer.state.global_step)}  # fmt: skip
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.output), metadata=metadata)
    size = Path(args.output).stat().st_size
    log(f"wrote {args.output} ({size / 1e6:.1f} MB, {math.fsum(t.numel() for t in tensors.values()):.0f} weights)")


__all__ = [
    "LINE_SPM_RATE",
    "LOG_PATH",
    "MIX",
    "SEED",
    "build_parser",
    "eot_weighted_loss",
    "hf_config",
    "line_split",
    "main",
    "meta_state_dict",
    "stdlib_files",
    "training_examples",
]


if __name__ == "__main__":
    main()
