"""LoRA fine-tuning end to end: a converted checkpoint, FIM examples, `Trainer` + `peft`, `save_pretrained`,
reload (as an adapter and merged), infilling through the pipeline. Runs on the package's small trained model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, pipeline

from transformers_codellama.conversion.convert import convert
from transformers_codellama.tiny_checkpoint import CONTEXT, write_meta_checkpoint
from transformers_codellama.training.fim import fim_map_function
from transformers_codellama.training.fim_collator import FimDataCollator
from transformers_codellama.training.tiny_model import stdlib_files

peft = pytest.importorskip("peft")
datasets = pytest.importorskip("datasets")

PROMPT = "def area(width, height):\n    <FILL_ME>\n    return result\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model, written in Meta's layout and converted by the real converter."""
    scratch = tmp_path_factory.mktemp("fine-tuning")
    meta = write_meta_checkpoint(scratch / "CodeLlama-tiny")
    convert(input_dir=meta, output_dir=scratch / "converted", dtype="float32")
    return scratch / "converted"


def _documents() -> tuple[list[str], list[str]]:
    """Short windows of held-out standard-library files: alternate windows to train on and to evaluate on."""
    _, held_out = stdlib_files()
    windows = []
    for path in held_out[:12]:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        windows += ["".join(lines[start : start + 6]) for start in range(0, len(lines), 6)]
    windows = [window for window in windows if window.strip()]
    random.Random(0).shuffle(windows)
    return windows[0:320:2], windows[1:64:2]


def _infill(model, tokenizer) -> str:
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    return generator(PROMPT, max_new_tokens=8, do_sample=False)[0]["generated_text"]


def _held_out_loss(trainer: Trainer, dataset) -> float:
    return trainer.evaluate(eval_dataset=dataset)["eval_loss"]


def test_lora_fine_tuning_lowers_held_out_fim_loss_and_survives_reload(checkpoint: Path, tmp_path: Path):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    train_docs, eval_docs = _documents()
    transform = fim_map_function(tokenizer, seed=0, max_length=CONTEXT)
    train = datasets.Dataset.from_dict({"text": train_docs}).map(transform, batched=True, remove_columns=["text"])
    held_out = datasets.Dataset.from_dict({"text": eval_docs}).map(transform, batched=True, remove_columns=["text"])
    assert set(train["fim"]) == {"psm", "spm", "plain"}

    lora = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                           target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])  # fmt: skip
    tuned = peft.get_peft_model(model, lora)
    trainable = sum(p.numel() for p in tuned.parameters() if p.requires_grad)
    assert 0 < trainable < 0.2 * sum(p.numel() for p in tuned.parameters())
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=20,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        remove_unused_columns=False,  # FimDataCollator reads prompt_length
        disable_tqdm=True,
    )
    trainer = Trainer(model=tuned, args=args, train_dataset=train, data_collator=FimDataCollator())
    before = _held_out_loss(trainer, held_out)
    trainer.train()
    after = _held_out_loss(trainer, held_out)
    assert after < before - 0.02, (before, after)

    tuned.eval()
    in_memory = _infill(tuned, tokenizer)
    assert in_memory.startswith("def area(width, height):\n    ") and in_memory.endswith("\n    return result\n")

    adapter_dir, merged_dir = tmp_path / "adapter", tmp_path / "merged"
    tuned.save_pretrained(adapter_dir)
    assert (adapter_dir / "adapter_config.json").is_file()
    base = AutoModelForCausalLM.from_pretrained(checkpoint)
    reloaded = peft.PeftModel.from_pretrained(base, adapter_dir).eval()
    assert _infill(reloaded, tokenizer) == in_memory

    merged = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(checkpoint), adapter_dir)
    merged.merge_and_unload().save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)
    assert _infill(AutoModelForCausalLM.from_pretrained(merged_dir), AutoTokenizer.from_pretrained(merged_dir)) == (
        in_memory
    )
    # The adapter changed the model: the base model's own answer is not what was asserted above by accident.
    assert not torch.equal(
        reloaded.get_base_model().model.layers[0].self_attn.q_proj.weight,
        AutoModelForCausalLM.from_pretrained(merged_dir).model.layers[0].self_attn.q_proj.weight,
    )
