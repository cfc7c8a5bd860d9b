"""FIM training examples: Meta's training layout token for token, checked on real code against SentencePiece itself,
and equal up to `▁<MID>` to the tokenizer's own inference prompt (the invariant that makes training match use)."""

from __future__ import annotations

import random

import pytest
import sentencepiece as spm
from meta_tokenizer import MetaTokenizer
from real_data import CODELLAMA_MODEL, LLAMA2_MODEL, code_cuts, stdlib_sources

from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast, fim_example
from transformers_codellama.training.fim import DEFAULT_SEED, FimSplit, fim_examples, fim_layouts, fim_map_function


@pytest.fixture(scope="module")
def meta() -> MetaTokenizer:
    return MetaTokenizer(spm.SentencePieceProcessor(model_file=str(CODELLAMA_MODEL)))


@pytest.fixture(scope="module", params=["slow", "fast"])
def tokenizer(request: pytest.FixtureRequest):
    cls = CodeLlamaTokenizer if request.param == "slow" else CodeLlamaTokenizerFast
    return cls(vocab_file=str(CODELLAMA_MODEL))


@pytest.fixture(scope="module")
def documents() -> list[str]:
    """Real code: chunks of standard-library files of varied lengths (whole files are too long for one context)."""
    rng = random.Random(7)
    out = []
    for text in stdlib_sources(120):
        start = rng.randrange(len(text))
        out.append(text[start : start + rng.randint(0, 2500)])
    return out


def _segments(ids: list[int], meta: MetaTokenizer) -> tuple[list[int], list[int], list[int]]:
    """Read an example back: (tokens between ▁<PRE> and ▁<SUF>, suffix tokens, tokens between ▁<MID> and ▁<EOT>).

    An SPM example has no tokens between ▁<PRE> and ▁<SUF>; neither has a PSM example with an empty prefix.
    """
    assert ids[0] == meta.bos_id and ids[1] == meta.prefix_id
    assert ids[-1] == meta.eot_id and ids.count(meta.middle_id) == 1 and ids.count(meta.suffix_id) == 1
    suf, mid = ids.index(meta.suffix_id), ids.index(meta.middle_id)
    return ids[2:suf], ids[suf + 1 : mid], ids[mid + 1 : -1]


def test_every_example_is_metas_layout_and_starts_with_the_inference_prompt(meta, tokenizer, documents):
    seen = set()
    for index, text in enumerate(documents):
        example = fim_example(text, tokenizer, seed=index, fim_rate=1.0)
        ids = example["input_ids"]
        assert example["labels"] == ids
        prefix_ids, suffix_ids, tail = _segments(ids, meta)
        layout = example["fim"]
        seen.add(layout)
        suffix = meta.decode_infilling(suffix_ids)
        mid = ids.index(meta.middle_id)
        if layout == "psm":
            prefix, middle = meta.sp.decode(prefix_ids), meta.decode_infilling(tail)
            assert prefix + middle + suffix == text
            expected = meta.infilling_prompt(prefix, suffix) + meta.encode_infilling(middle) + [meta.eot_id]
            prompt = tokenizer(prefix, suffix=suffix)["input_ids"]
            assert example["prompt_length"] == mid + 1
        else:
            assert layout == "spm" and prefix_ids == []
            joined = meta.sp.decode(tail)  # SPM encodes prefix and middle together
            assert joined + suffix == text
            expected = [meta.bos_id, meta.prefix_id, meta.suffix_id, *meta.encode_infilling(suffix), meta.middle_id,
                        *meta.encode(joined, False, False), meta.eot_id]  # fmt: skip
            # The SPM prompt's head (up to ▁<MID>) does not depend on the prefix; its enc(prefix) follows.
            cut = random.Random(index).randint(0, len(joined))
            prompt = tokenizer(joined[:cut], suffix=suffix, suffix_first=True)["input_ids"]
            given = prompt[mid + 1 :]
            shared = next((n for n, (a, b) in enumerate(zip(given, tail)) if a != b), min(len(given), len(tail)))
            assert (
                fim_layouts(tokenizer, [FimSplit(joined[:cut], joined[cut:], suffix, True)])[0]["prompt_length"]
                == mid + 1 + shared
            )
        assert ids == expected, text
        assert ids[: mid + 1] == prompt[: mid + 1]
    assert seen == {"psm", "spm"}


def test_explicit_splits_of_real_code_match_meta(meta, tokenizer):
    """Cuts at random characters of real code (mid-token, inside whitespace runs), both layouts, batched."""
    splits = []
    rng = random.Random(3)
    for prefix, rest in code_cuts(150, seed=11):
        cut = rng.randint(0, len(rest))
        splits.append(FimSplit(prefix, rest[:cut], rest[cut:], suffix_first=rng.random() < 0.5))
    for split, example in zip(splits, fim_layouts(tokenizer, splits), strict=True):
        if split.suffix_first:
            expected = [meta.bos_id, meta.prefix_id, meta.suffix_id, *meta.encode_infilling(split.suffix),
                        meta.middle_id, *meta.encode(split.prefix + split.middle, False, False), meta.eot_id]  # fmt: skip
        else:
            expected = [*meta.infilling_prompt(split.prefix, split.suffix), *meta.encode_infilling(split.middle),
                        meta.eot_id]  # fmt: skip
        assert example["input_ids"] == expected
        prompt = tokenizer(split.prefix, suffix=split.suffix, suffix_first=split.suffix_first)["input_ids"]
        mid = prompt.index(meta.middle_id)
        assert example["input_ids"][: mid + 1] == prompt[: mid + 1]


def test_rates_and_uniform_split_points(meta):
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    rng = random.Random(5)
    texts = [f"x{i} = {rng.random()}\n" * rng.randint(1, 4) for i in range(3000)]
    examples = fim_examples(texts, tokenizer, seed=1)
    kinds = [example["fim"] for example in examples]
    fim = [kind for kind in kinds if kind != "plain"]
    # 3000 draws: a binomial's standard deviation is under 0.01 here, so these bounds are > 4 sigma wide.
    assert abs(len(fim) / len(kinds) - 0.9) < 0.03
    assert abs(fim.count("spm") / len(fim) - 0.5) < 0.05
    starts = []
    for text, example in zip(texts, examples):
        if example["fim"] == "psm":
            prefix_ids, _, _ = _segments(example["input_ids"], meta)
            starts.append(len(meta.sp.decode(prefix_ids)) / len(text))
        elif example["fim"] == "plain":
            assert example["input_ids"] == [meta.bos_id, *meta.encode(text, False, False), meta.eos_id]
    # The prefix ends at the smaller of two uniform draws: mean 1/3.
    assert abs(sum(starts) / len(starts) - 1 / 3) < 0.03


def test_seeded_reproducible_and_the_same_for_both_tokenizer_classes(documents):
    slow = CodeLlamaTokenizer(vocab_file=str(CODELLAMA_MODEL))
    fast = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    docs = documents[:40]
    first = fim_examples(docs, slow, seed=42)
    assert first == fim_examples(docs, fast, seed=42)
    assert first == [fim_example(text, fast, seed=42) for text in docs]
    assert fim_examples(docs, fast, seed=43) != first


def test_documents_that_do_not_fit_the_context_are_not_transformed(meta, tokenizer, documents):
    max_length = 64
    for index, text in enumerate(documents[:60]):
        example = fim_example(text, tokenizer, seed=index, fim_rate=1.0, max_length=max_length)
        plain = [meta.bos_id, *meta.encode(text, False, False), meta.eos_id]
        assert len(example["input_ids"]) <= max_length
        if len(plain) > max_length:
            assert example["fim"] == "plain" and example["input_ids"] == plain[:max_length]
        elif example["fim"] == "plain":  # fits plainly, but its FIM layout (a few tokens longer) did not
            assert example["input_ids"] == plain
            assert len(fim_example(text, tokenizer, seed=index, fim_rate=1.0)["input_ids"]) > max_length


def test_tokenizer_without_infilling_pieces_is_refused():
    llama2 = CodeLlamaTokenizerFast(vocab_file=str(LLAMA2_MODEL))
    with pytest.raises(ValueError, match=r"no ▁<PRE>/▁<SUF>/▁<MID>/▁<EOT> pieces"):
        fim_example("def f():\n    pass\n", llama2, seed=0)
    with pytest.raises(ValueError, match="no ▁<PRE>"):
        fim_map_function(llama2)


def test_bad_arguments_are_named():
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    with pytest.raises(ValueError, match="fim_rate must be between 0 and 1"):
        fim_example("x = 1\n", tokenizer, fim_rate=1.5)
    with pytest.raises(TypeError, match="got int"):
        fim_example(3, tokenizer)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no 'content' column"):
        fim_map_function(tokenizer, text_column="content")({"text": ["x = 1\n"]})


def test_datasets_map_batched_and_streaming(documents):
    from datasets import Dataset

    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    docs = documents[:30]
    expected = [fim_example(text, tokenizer, seed=9, max_length=512) for text in docs]
    dataset = Dataset.from_dict({"text": docs, "path": [f"f{i}.py" for i in range(len(docs))]})
    transform = fim_map_function(tokenizer, seed=9, max_length=512)
    mapped = dataset.map(transform, batched=True, batch_size=7, remove_columns=dataset.column_names)
    assert [dict(row) for row in mapped] == expected
    streamed = dataset.to_iterable_dataset(num_shards=3).map(transform, batched=True, batch_size=4,
                                                              remove_columns=["text", "path"])  # fmt: skip
    assert [dict(row) for row in streamed] == expected


def test_every_entry_point_defaults_to_the_same_seed(documents):
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    docs = documents[:12]
    seeded = fim_examples(docs, tokenizer, seed=DEFAULT_SEED)
    assert fim_examples(docs, tokenizer) == seeded == [fim_example(text, tokenizer) for text in docs]
    mapped = fim_map_function(tokenizer)({"text": docs})
    assert [dict(zip(mapped, row)) for row in zip(*mapped.values())] == seeded
