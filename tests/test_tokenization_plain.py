"""Plain text: both tokenizers against SentencePiece itself, on real code and on REFERENCE.md's published ids."""

from __future__ import annotations

import pytest
from real_data import code_cuts, stdlib_sources

# Meta's published ids (REFERENCE.md), without BOS.
PUBLISHED = {
    "Hello world": [15043, 3186],
    " Hello world": [29871, 15043, 3186],
    " ": [259],
    "  ": [1678],
    "   ": [268],
    "\n": [29871, 13],
}


@pytest.mark.parametrize("text", list(PUBLISHED))
@pytest.mark.parametrize("kind", ["slow", "fast"])
def test_published_ids(kind, text, request):
    tokenizer = request.getfixturevalue(kind)["codellama"]
    assert tokenizer(text)["input_ids"] == [1, *PUBLISHED[text]]
    assert tokenizer.encode(text, add_special_tokens=False) == PUBLISHED[text]


@pytest.mark.parametrize("model", ["codellama", "llama2", "tiny"])
def test_whole_stdlib_files_match_sentencepiece(model, sp, slow, fast):
    texts = stdlib_sources(limit=150)
    expected = [[sp[model].bos_id(), *ids] for ids in sp[model].encode(texts)]
    assert fast[model](texts)["input_ids"] == expected
    assert slow[model](texts)["input_ids"] == expected


@pytest.mark.parametrize("model", ["codellama", "tiny"])
def test_random_cuts_of_real_code_match_sentencepiece(model, sp, slow, fast):
    pieces = [piece for cut in code_cuts(400, seed=1) for piece in cut]
    expected = sp[model].encode(pieces)
    for tokenizer in (slow[model], fast[model]):
        assert [tokenizer.encode(piece, add_special_tokens=False) for piece in pieces[:100]] == expected[:100]
        assert tokenizer(pieces, add_special_tokens=False)["input_ids"] == expected


@pytest.mark.parametrize("kind", ["slow", "fast"])
def test_decode_round_trips_real_code(kind, request):
    tokenizer = request.getfixturevalue(kind)["codellama"]
    for prefix, suffix in code_cuts(200, seed=2):
        for text in (prefix, suffix, prefix + suffix):
            assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


@pytest.mark.parametrize("text", ["<s>", "</s>", "<unk>", "x = '<s>'</s>", "[INST] hi [/INST]", "<s>strike</s>"])
@pytest.mark.parametrize("kind", ["slow", "fast"])
def test_control_strings_in_text_are_text(kind, text, sp, request):
    tokenizer = request.getfixturevalue(kind)["codellama"]
    assert tokenizer(text)["input_ids"] == [1, *sp["codellama"].encode(text)]
    assert tokenizer.tokenize(text) == sp["codellama"].encode(text, out_type=str)
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


@pytest.mark.parametrize("model", ["codellama", "llama2", "tiny"])
def test_len_is_the_sentencepiece_vocabulary(model, sp, slow, fast):
    assert len(slow[model]) == len(fast[model]) == sp[model].get_piece_size()
    assert slow[model].vocab_size == fast[model].vocab_size == sp[model].get_piece_size()
    assert "<FILL_ME>" not in fast[model].get_vocab() and "<FILL_ME>" not in slow[model].get_vocab()
    assert slow[model].get_vocab() == fast[model].get_vocab()


def test_tokenize_matches_sentencepiece_pieces(sp, slow, fast):
    for prefix, _ in code_cuts(50, seed=3):
        pieces = sp["codellama"].encode(prefix, out_type=str)
        assert slow["codellama"].tokenize(prefix) == pieces
        assert fast["codellama"].tokenize(prefix) == pieces
        ids = sp["codellama"].encode(prefix)
        assert slow["codellama"].convert_tokens_to_string(pieces) == fast["codellama"].convert_tokens_to_string(pieces)
        assert slow["codellama"].convert_ids_to_tokens(ids) == fast["codellama"].convert_ids_to_tokens(ids) == pieces


def test_add_eos_and_no_bos(slow, fast):
    for tokenizer in (slow["codellama"], fast["codellama"]):
        assert tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [15043, 3186]
        assert tokenizer.build_inputs_with_special_tokens([5, 6]) == [1, 5, 6]
        assert tokenizer.build_inputs_with_special_tokens([5], [6]) == [1, 5, 1, 6]
        assert tokenizer.get_special_tokens_mask([5, 6]) == [1, 0, 0]
        assert tokenizer.get_special_tokens_mask([1, 5, 2], already_has_special_tokens=True) == [1, 0, 1]
        assert tokenizer.create_token_type_ids_from_sequences([5], [6, 7]) == [0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_special_tokens_mask": True, "return_length": True},
        {"return_tensors": "pt"},
        {"add_special_tokens": False},
    ],
)
def test_fast_and_slow_return_the_same_fields(options, slow, fast):
    texts = ["def f(x):\n    return x\n", "  indented", ""]
    for batch in (texts, texts[0]) if "return_tensors" not in options else (texts[0], texts[:1]):
        expected = slow["codellama"](batch, **options)
        got = fast["codellama"](batch, **options)
        assert set(got) == set(expected)
        for key in expected:
            as_list = [getattr(value, "tolist", lambda v=value: v)() for value in (got[key], expected[key])]
            assert as_list[0] == as_list[1], key


def test_fast_keeps_encodings_for_plain_text(fast):
    encoded = fast["codellama"](["def f(x):", "    return x"])
    assert encoded.tokens(1) == ["<s>", "▁▁▁▁", "▁return", "▁x"]
    assert encoded.char_to_token(1, 6) == 2  # the "t" of "return"
