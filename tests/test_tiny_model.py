"""The shipped trained model: its Meta-layout export survives the real converter, and its training data layout."""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tiny_checkpoints import random_model

from transformers_codellama import CodeLlamaForCausalLM, CodeLlamaTokenizerFast
from transformers_codellama.conversion.convert import convert
from transformers_codellama.tiny_checkpoint import CONTEXT, PARAMS, WEIGHTS_PATH, write_meta_checkpoint
from transformers_codellama.tiny_tokenizer import TINY_MODEL_PATH
from transformers_codellama.training.tiny_model import (
    hf_config,
    line_split,
    meta_state_dict,
    stdlib_files,
    training_examples,
)


def test_meta_export_converts_back_to_the_same_model(tmp_path):
    """HF weights -> Meta names and rotary layout -> `codellama-convert --verify` -> the same logits."""
    params = {**PARAMS, "n_kv_heads": 2}
    model = random_model(hf_config(params, vocab_size=1000), seed=3).to(torch.bfloat16).float()
    weights = tmp_path / "weights.safetensors"
    save_file(meta_state_dict(model, params), str(weights), metadata={"params": json.dumps(params)})
    meta = write_meta_checkpoint(tmp_path / "CodeLlama-tiny", weights)
    convert(input_dir=meta, output_dir=tmp_path / "converted", dtype="float32", verify=True)
    converted = CodeLlamaForCausalLM.from_pretrained(tmp_path / "converted").eval()
    ids = torch.tensor([[1, *random.Random(0).sample(range(3, 1000), 40)]])
    with torch.no_grad():
        torch.testing.assert_close(converted(ids).logits, model.eval()(ids).logits, rtol=1e-4, atol=2e-4)


def test_shipped_weights_record_how_they_were_trained():
    with safe_open(str(WEIGHTS_PATH), framework="pt") as handle:
        metadata = handle.metadata()
        names = set(handle.keys())
    params = json.loads(metadata["params"])
    assert params == PARAMS and int(metadata["context"]) == CONTEXT and int(metadata["steps"]) > 0
    assert {"tok_embeddings.weight", "output.weight", "layers.0.attention.wq.weight"} <= names
    assert WEIGHTS_PATH.stat().st_size < 5_000_000


def test_held_out_files_are_not_trained_on():
    train, held_out = stdlib_files()
    assert len(held_out) > 20 and not set(train) & set(held_out)
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(TINY_MODEL_PATH))
    held_out_lines = {line for path in held_out for line in path.read_text(encoding="utf-8").splitlines()}
    examples = training_examples([train[0].read_text(encoding="utf-8")], tokenizer, seed=0, context=CONTEXT)
    assert examples and all(len(example["input_ids"]) <= CONTEXT for example in examples)
    assert {example["fim"] for example in examples} == {"psm", "spm", "plain"}
    assert held_out_lines  # (held-out text is only read by the benchmark)


def test_line_split_blanks_one_whole_line():
    text = "def f(x):\n    y = x + 1\n\n    return y\n"
    for seed in range(10):
        split = line_split(text, random.Random(seed), suffix_first=False)
        assert split is not None and split.prefix + split.middle + split.suffix == text
        assert split.middle.endswith("\n") and split.middle.strip() and split.middle.count("\n") == 1
        assert split.prefix == "" or split.prefix.endswith("\n")
    assert line_split("\n\n", random.Random(0), suffix_first=True) is None


def test_meta_export_names_a_weights_file_without_params(tmp_path):
    weights = tmp_path / "weights.safetensors"
    save_file({"norm.weight": torch.ones(4)}, str(weights))
    with pytest.raises(ValueError, match=r"weights\.safetensors: no 'params' in the file's metadata"):
        write_meta_checkpoint(tmp_path / "CodeLlama-tiny", weights)
