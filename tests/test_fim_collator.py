"""FimDataCollator: padding, labels masked on padding by position (never by id), and middle-only training."""

from __future__ import annotations

import pytest
import torch
from real_data import CODELLAMA_MODEL, code_cuts

from transformers_codellama import CodeLlamaTokenizerFast
from transformers_codellama.training.fim import FimSplit, fim_examples, fim_layouts
from transformers_codellama.training.fim_collator import IGNORE_INDEX, FimDataCollator


@pytest.fixture(scope="module")
def tokenizer() -> CodeLlamaTokenizerFast:
    return CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))


@pytest.fixture(scope="module")
def examples(tokenizer) -> list[dict]:
    docs = [prefix + suffix for prefix, suffix in code_cuts(24, seed=4, max_len=300)]
    out = fim_examples(docs, tokenizer, seed=0, fim_rate=0.7)
    assert {example["fim"] for example in out} == {"psm", "spm", "plain"}
    return out


def test_padding_and_labels_with_pad_equal_to_eos(tokenizer, examples):
    # The classic mistake: pad id = </s>, then masking labels by id erases every </s>. Masking is by position here.
    batch = FimDataCollator(pad_token_id=tokenizer.eos_token_id)(examples)
    width = max(len(example["input_ids"]) for example in examples)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (len(examples), width)
    for row, example in enumerate(examples):
        ids, n = example["input_ids"], len(example["input_ids"])
        assert batch["input_ids"][row, :n].tolist() == ids
        assert batch["labels"][row, :n].tolist() == ids  # every real token keeps its loss, </s> and ▁<EOT> included
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["input_ids"][row, n:].tolist() == [tokenizer.eos_token_id] * (width - n)
        assert batch["labels"][row, n:].tolist() == [IGNORE_INDEX] * (width - n)
    ends = [example["input_ids"][-1] for example in examples]
    assert tokenizer.eot_id in ends and tokenizer.eos_token_id in ends


def test_middle_only_trains_on_what_the_model_generates(tokenizer):
    split_psm = FimSplit("def add(a, b):\n    return ", "a + b", "\n\nprint(add(1, 2))\n", suffix_first=False)
    split_spm = FimSplit("def add(a, b):\n    return ", "a + b", "\n\nprint(add(1, 2))\n", suffix_first=True)
    psm, spm = fim_layouts(tokenizer, [split_psm, split_spm])
    batch = FimDataCollator(middle_only=True)([psm, spm])
    trained = [[token for token in row if token != IGNORE_INDEX] for row in batch["labels"].tolist()]
    # PSM: everything after ▁<MID> is generated: the middle, then ▁<EOT>.
    assert trained[0][-1] == tokenizer.eot_id
    assert tokenizer.decode_infill(trained[0]) == "a + b"
    assert trained[0] == psm["input_ids"][psm["input_ids"].index(tokenizer.middle_id) + 1 :]
    # SPM: the prompt ends with enc(prefix) = "... ▁return ▁", but training has enc(prefix + middle) =
    # "... ▁return ▁a ▁+ ▁b": the generated part starts where the two differ.
    prompt = tokenizer(split_spm.prefix, suffix=split_spm.suffix, suffix_first=True)["input_ids"]
    assert spm["input_ids"][: spm["prompt_length"]] == prompt[: spm["prompt_length"]]
    assert spm["input_ids"][spm["prompt_length"]] != prompt[spm["prompt_length"]]
    assert trained[1] == spm["input_ids"][spm["prompt_length"] :]
    assert tokenizer.decode(trained[1][:-1]) == "a + b"


def test_features_without_labels_and_pad_to_multiple(examples):
    features = [{"input_ids": example["input_ids"]} for example in examples[:3]]
    batch = FimDataCollator(pad_to_multiple_of=8)(features)
    assert batch["input_ids"].shape[1] % 8 == 0
    n = len(features[0]["input_ids"])
    assert torch.equal(batch["labels"][0, :n], batch["input_ids"][0, :n])


def test_errors_are_named(examples):
    with pytest.raises(ValueError, match="has no prompt_length"):
        FimDataCollator(middle_only=True)([{"input_ids": [1, 2, 3]}])
    with pytest.raises(ValueError, match="over max_length=4"):
        FimDataCollator(max_length=4)([{"input_ids": [1, 2, 3, 4, 5]}])
    with pytest.raises(ValueError, match="labels has 2 tokens but input_ids has 3"):
        FimDataCollator()([{"input_ids": [1, 2, 3], "labels": [1, 2]}])
    with pytest.raises(ValueError, match="empty list"):
        FimDataCollator()([])
