"""Property-based: for generated strings, slow == fast == SentencePiece (plain, infilling, decoding)."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from meta_tokenizer import MetaTokenizer

# Code-like text: whitespace runs, indentation, punctuation, non-ASCII (byte fallback for rare characters).
ALPHABET = st.one_of(
    st.sampled_from([*" \t\n\r  ", "    ", "\n    ", "\t\t"]),
    st.sampled_from(list("()[]{}:;,.=+-*/<>'\"#@_$\\|")),
    st.characters(codec="utf-8", exclude_categories=("Cs",)),
    st.sampled_from(["def", "return", "<s>", "</s>", "<PRE>", "☺", "▁", "é", "漢字", "🦙", "\x00"]),
)
TEXT = st.lists(ALPHABET, max_size=40).map("".join)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(text=TEXT)
def test_plain_encode_and_decode(text, sp, slow, fast):
    for model in ("codellama", "tiny"):
        expected = [1, *sp[model].encode(text)]
        assert slow[model](text)["input_ids"] == expected
        assert fast[model](text)["input_ids"] == expected
        decoded = sp[model].decode(expected[1:])
        assert slow[model].decode(expected, skip_special_tokens=True) == decoded
        assert fast[model].decode(expected, skip_special_tokens=True) == decoded
        if "▁" not in text:  # SentencePiece itself turns a literal "▁" into a space
            assert decoded == text


@SETTINGS
@given(prefix=TEXT, suffix=TEXT, suffix_first=st.booleans())
def test_infilling_layout(prefix, suffix, suffix_first, sp, slow, fast):
    assume("<FILL_ME>" not in prefix + suffix)  # the marker itself goes between them
    for model in ("codellama", "tiny"):
        expected = MetaTokenizer(sp[model]).infilling_prompt(prefix, suffix, suffix_first=suffix_first)
        prompt = prefix + "<FILL_ME>" + suffix
        assert slow[model](prompt, suffix_first=suffix_first)["input_ids"] == expected
        assert fast[model](prompt, suffix_first=suffix_first)["input_ids"] == expected


@SETTINGS
@given(middle=TEXT)
def test_decode_infill(middle, sp, slow, fast):
    meta = MetaTokenizer(sp["codellama"])
    ids = meta.encode_infilling(middle)
    assert slow["codellama"].decode_infill(ids) == fast["codellama"].decode_infill(ids) == meta.decode_infilling(ids)


@SETTINGS
@given(ids=st.lists(st.integers(min_value=0, max_value=32015), max_size=30), skip=st.booleans())
def test_decoding_any_ids_agrees(ids, skip, slow, fast):
    assert slow["codellama"].decode(ids, skip_special_tokens=skip) == fast["codellama"].decode(
        ids, skip_special_tokens=skip
    )
    assert slow["codellama"].convert_ids_to_tokens(ids) == fast["codellama"].convert_ids_to_tokens(ids)
