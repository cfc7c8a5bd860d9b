"""Pieces matched whole in text, against SentencePiece itself with those pieces as user-defined pieces of the model:
70B-Instruct's `<step>`, and tokens added with `add_tokens` (both classes behave as if the model had them)."""

from __future__ import annotations

import json
import random

import pytest
import sentencepiece as spm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meta_tokenizer import MetaTokenizer
from real_data import CODELLAMA_MODEL, code_cuts

from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast
from transformers_codellama.tiny_tokenizer import append_pieces

ADDED = ["<mytok>", "<my>", "<|tool|>"]  # "<my>" is a prefix of "<mytok>": the longest match wins
CLASSES = [CodeLlamaTokenizer, CodeLlamaTokenizerFast]


@pytest.fixture(scope="module")
def with_added() -> spm.SentencePieceProcessor:
    """The oracle: Code Llama's model with ADDED appended as user-defined pieces (ids 32016, 32017, 32018)."""
    return spm.SentencePieceProcessor(model_proto=append_pieces(CODELLAMA_MODEL.read_bytes(), ADDED, user_defined=True))


@pytest.fixture(scope="module")
def added() -> list:
    tokenizers = [cls(vocab_file=str(CODELLAMA_MODEL)) for cls in CLASSES]
    for tokenizer in tokenizers:
        assert tokenizer.add_tokens(ADDED) == len(ADDED)
    return tokenizers


def _sprinkled(pieces: list[str], count: int, seed: int) -> list[str]:
    """Real code with pieces inserted at random places: text start, after spaces, inside words, back to back."""
    rng = random.Random(seed)
    texts = []
    for prefix, suffix in code_cuts(count, seed=seed, max_len=300):
        text = prefix + suffix
        for _ in range(rng.randrange(1, 4)):
            cut = rng.choice([0, len(text), rng.randrange(len(text) + 1)])
            text = text[:cut] + rng.choice(pieces) + rng.choice(["", " ", "  ", "\n"]) + text[cut:]
        texts.append(text)
    return texts


CORNERS = ["<mytok>", " <mytok>", "a<mytok>b", "a <mytok> b", "<my><mytok>", "x  <my>  y", "<mytok", "<my>\n", ""]


def test_added_tokens_match_user_defined_pieces(added, with_added):
    texts = CORNERS + _sprinkled(ADDED, 60, seed=3)
    expected = [[1, *ids] for ids in with_added.encode(texts)]
    for tokenizer in added:
        assert len(tokenizer) == 32016 + len(ADDED)
        assert tokenizer(texts)["input_ids"] == expected
        assert [tokenizer(text)["input_ids"] for text in texts[:20]] == expected[:20]
        assert [tokenizer.tokenize(text) for text in texts] == [with_added.encode(text, out_type=str) for text in texts]
        assert [tokenizer.decode(ids, skip_special_tokens=True) for ids in expected] == texts


def test_added_tokens_in_padded_calls_and_infilling(added, with_added):
    meta = MetaTokenizer(with_added)
    texts = _sprinkled(ADDED, 6, seed=4)
    for tokenizer in added:
        tokenizer.pad_token = "<unk>"
        batch = tokenizer(texts, padding=True, truncation=True, max_length=40)
        content = [ids[:39] for ids in with_added.encode(texts)]
        assert batch["input_ids"] == [[0] * (40 - len(ids) - 1) + [1, *ids] for ids in content]
        tokenizer.pad_token = None
        prefix, suffix = texts[0], texts[1]
        assert tokenizer(prefix, suffix=suffix)["input_ids"] == meta.infilling_prompt(prefix, suffix)
        assert tokenizer(prefix + "<FILL_ME>" + suffix, suffix_first=True)["input_ids"] == meta.infilling_prompt(
            prefix, suffix, suffix_first=True
        )


def test_offsets_for_text_with_added_tokens_are_refused(added):
    with pytest.raises(ValueError, match="return_offsets_mapping is not available for text holding added tokens"):
        added[1](["x = 1", "a<mytok>b"], return_offsets_mapping=True)
    assert added[1](["x = 1"], return_offsets_mapping=True)["offset_mapping"] == [
        [(0, 0), (0, 1), (1, 3), (3, 4), (4, 5)]
    ]


def test_special_added_tokens_stay_text(added):
    for cls in CLASSES:
        tokenizer = cls(vocab_file=str(CODELLAMA_MODEL))
        before = tokenizer("x = '<pad>'")["input_ids"]
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
        assert tokenizer.pad_token_id == 32016
        assert tokenizer("x = '<pad>'")["input_ids"] == before


def test_step_piece_of_a_70b_shaped_model(step_model_path):
    oracle = spm.SentencePieceProcessor(model_file=str(step_model_path))
    texts = ["<step>", "a<step>b", " <step> Source: user", *_sprinkled(["<step>"], 40, seed=5)]
    expected = [[1, *ids] for ids in oracle.encode(texts)]
    for cls in CLASSES:
        tokenizer = cls(vocab_file=str(step_model_path))
        assert tokenizer(texts)["input_ids"] == expected
        assert [tokenizer.tokenize(text) for text in texts] == [oracle.encode(text, out_type=str) for text in texts]
        assert [tokenizer.decode(ids[1:]) for ids in expected] == texts
        assert tokenizer.convert_ids_to_tokens(tokenizer.step_id) == "<step>"


def test_added_tokens_survive_save_and_load(added, with_added, tmp_path):
    texts = _sprinkled(ADDED, 10, seed=6)
    expected = [[1, *ids] for ids in with_added.encode(texts)]
    for index, tokenizer in enumerate(added):
        folder = tmp_path / str(index)
        tokenizer.save_pretrained(folder)
        for cls in CLASSES:
            reloaded = cls.from_pretrained(folder)
            assert len(reloaded) == len(tokenizer)
            assert reloaded(texts)["input_ids"] == expected, (type(tokenizer).__name__, cls.__name__)


def test_tokenizer_json_with_normalized_added_tokens_decodes_them_as_written(step_model_path, tmp_path):
    # Earlier versions stored user-defined pieces as normalized added tokens, which `tokenizers` decodes as "▁<step>".
    CodeLlamaTokenizerFast(vocab_file=str(step_model_path)).save_pretrained(tmp_path)
    state = json.loads((tmp_path / "tokenizer.json").read_text())
    for token in state["added_tokens"]:
        token["normalized"] = not token["special"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(state))
    tokenizer = CodeLlamaTokenizerFast.from_pretrained(tmp_path)
    ids = tokenizer.convert_tokens_to_ids(["▁a", "<step>", "b"])
    assert tokenizer.encode("a<step>b", add_special_tokens=False) == ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["▁a", "<step>", "b"]
    assert tokenizer.decode(ids) == "a<step>b"


FRAGMENTS = st.one_of(st.sampled_from([*ADDED, " ", "  ", "\n", "a", "é", "<", "my", ">", "tok"]), st.text(max_size=4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(FRAGMENTS, max_size=12).map("".join))
def test_generated_text_with_added_tokens(text, added, with_added):
    expected = [1, *with_added.encode(text)]
    for tokenizer in added:
        assert tokenizer(text)["input_ids"] == expected
