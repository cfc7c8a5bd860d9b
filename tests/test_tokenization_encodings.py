"""Plain fast calls against `tokenizers` itself: the `Encoding`s (character offsets, computed on first use), and
padding and truncation, which the fast tokenizer does without reconfiguring the shared backend."""

from __future__ import annotations

import pickle
import threading

import pytest
from real_data import stdlib_sources
from tokenizers import Tokenizer

from transformers_codellama import CodeLlamaTokenizerFast

# Real code plus what makes byte and character offsets differ: accents, CJK, emoji (byte fallback), and nothing.
TEXTS = [
    *[text[:3000] for text in stdlib_sources(limit=40)[::8]],
    "def naïve(café):  # 日本語\n    return '🦙' * 2\n",
    "",
    "   \t\n",
]


def _fields(encoding):
    return (
        encoding.ids,
        encoding.tokens,
        encoding.offsets,
        encoding.word_ids,
        encoding.sequence_ids,
        encoding.special_tokens_mask,
        encoding.attention_mask,
    )


@pytest.mark.parametrize("options", [{}, {"add_special_tokens": False}, {"return_special_tokens_mask": True}])
def test_encodings_equal_those_tokenizers_computes(fast, options):
    tokenizer = fast["codellama"]
    got = tokenizer(TEXTS, **options)
    # The reference: `tokenizers` encoding the same texts with character offsets, in one eager call.
    expected = tokenizer.backend_tokenizer.encode_batch(
        TEXTS, add_special_tokens=options.get("add_special_tokens", True)
    )
    assert [_fields(encoding) for encoding in got.encodings] == [_fields(encoding) for encoding in expected]
    with_offsets = tokenizer(TEXTS, return_offsets_mapping=True, **options)
    assert with_offsets["offset_mapping"] == [encoding.offsets for encoding in expected]
    assert with_offsets["input_ids"] == got["input_ids"] and type(with_offsets.encodings) is list
    for index, (text, encoding) in enumerate(zip(TEXTS, expected)):
        assert got.tokens(index) == encoding.tokens
        assert [got.char_to_token(index, char) for char in range(len(text))] == [
            encoding.char_to_token(char) for char in range(len(text))
        ]


def test_alignment_methods_on_a_single_text_with_non_ascii(fast):
    tokenizer = fast["codellama"]
    text = TEXTS[-3]
    got = tokenizer(text)
    expected = tokenizer.backend_tokenizer.encode(text)
    assert got.is_fast and len(got.encodings) == 1 and got.n_sequences == 1
    assert got.word_ids() == expected.word_ids
    # The llama emoji is four bytes: offsets are in characters, so slicing the text gives the token's text.
    emoji = text.index("🦙")
    token = got.char_to_token(emoji)
    assert got.token_to_chars(token) == (emoji, emoji + 1)
    assert got["input_ids"] == expected.ids
    assert tokenizer(text, return_offsets_mapping=True)["offset_mapping"] == expected.offsets
    as_tensors = tokenizer(text, return_tensors="pt")
    assert as_tensors.word_ids(0) == expected.word_ids and as_tensors["input_ids"][0].tolist() == expected.ids


def test_encodings_behave_as_a_list(fast):
    got = fast["codellama"](TEXTS)
    encodings = got.encodings
    assert len(encodings) == len(TEXTS)
    assert encodings[-1].ids == encodings[len(TEXTS) - 1].ids
    assert [encoding.ids for encoding in encodings[1:3]] == got["input_ids"][1:3]
    assert got[0].ids == got["input_ids"][0]  # BatchEncoding[int] is the Encoding
    with pytest.raises(IndexError):
        encodings[len(TEXTS)]
    assert [encoding.ids for encoding in encodings] == got["input_ids"]


def test_pickled_batch_keeps_its_encodings(fast):
    got = fast["codellama"](TEXTS[-3:])
    restored = pickle.loads(pickle.dumps(got))
    assert type(restored.encodings) is list
    assert [_fields(encoding) for encoding in restored.encodings] == [_fields(encoding) for encoding in got.encodings]
    assert restored.char_to_token(0, 4) == got.char_to_token(0, 4)


def test_encodings_agree_with_ids_after_the_template_changes(fast):
    tokenizer = CodeLlamaTokenizerFast(vocab_file=fast["codellama"].vocab_file)
    got = tokenizer(["x = 1", "y"])
    tokenizer.add_eos_token = True  # a property: rebuilds the template, after the ids above were returned
    assert [encoding.ids for encoding in got.encodings] == got["input_ids"]
    assert (
        tokenizer(["x = 1"]).encodings[0].ids == tokenizer(["x = 1"])["input_ids"][0] == [1, 921, 353, 29871, 29896, 2]
    )


def test_first_access_from_many_threads(fast):
    got = fast["codellama"](TEXTS)
    expected = [_fields(encoding) for encoding in fast["codellama"].backend_tokenizer.encode_batch(TEXTS)]
    results: list[list] = [[] for _ in range(8)]

    def read(slot: int) -> None:
        for index in range(len(TEXTS)) if slot % 2 else reversed(range(len(TEXTS))):
            results[slot].append((index, _fields(got.encodings[index])))

    threads = [threading.Thread(target=read, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert sorted(result, key=lambda item: item[0]) == list(enumerate(expected))


# (call options, the same shape as `tokenizers` options: truncation direction and padding).
SHAPES = [
    ({"padding": True}, {"pad": {"direction": "left"}}),
    ({"padding": True, "padding_side": "right"}, {"pad": {"direction": "right"}}),
    ({"padding": "max_length", "max_length": 700}, {"pad": {"direction": "left", "length": 700}}),
    ({"padding": True, "pad_to_multiple_of": 64}, {"pad": {"direction": "left", "pad_to_multiple_of": 64}}),
    ({"truncation": True, "max_length": 16}, {"truncate": (16, "right")}),
    (
        {"truncation": True, "max_length": 16, "padding": "max_length", "return_special_tokens_mask": True},
        {"truncate": (16, "right"), "pad": {"direction": "left", "length": 16}},
    ),
    ({"truncation": True, "max_length": 9, "add_special_tokens": False}, {"truncate": (9, "right")}),
    ({"truncation": True, "max_length": 1}, {"truncate": (1, "right")}),
]


def _reference(tokenizer, texts, options, shape):
    """`tokenizers` doing the padding and truncation itself, on a private copy of the same backend."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    if "truncate" in shape:
        length, direction = shape["truncate"]
        backend.enable_truncation(length, direction=direction)
    if "pad" in shape:
        backend.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token, **shape["pad"])
    return backend.encode_batch(texts, add_special_tokens=options.get("add_special_tokens", True))


@pytest.mark.parametrize(("options", "shape"), SHAPES)
@pytest.mark.parametrize("truncation_side", ["right", "left"])
def test_padding_and_truncation_match_tokenizers(fast, options, shape, truncation_side):
    tokenizer = CodeLlamaTokenizerFast(vocab_file=fast["codellama"].vocab_file, pad_token="<unk>")
    tokenizer.truncation_side = truncation_side
    if "truncate" in shape:
        shape = {**shape, "truncate": (shape["truncate"][0], truncation_side)}
    expected = _reference(tokenizer, TEXTS, options, shape)
    got = tokenizer(TEXTS, **options)
    assert got["input_ids"] == [encoding.ids for encoding in expected]
    assert got["attention_mask"] == [encoding.attention_mask for encoding in expected]
    if options.get("return_special_tokens_mask"):
        assert got["special_tokens_mask"] == [encoding.special_tokens_mask for encoding in expected]
    assert tokenizer(TEXTS, return_offsets_mapping=True, **options)["offset_mapping"] == [
        encoding.offsets for encoding in expected
    ]
    assert [_fields(encoding) for encoding in got.encodings] == [_fields(encoding) for encoding in expected]
    # One text, and tensors, take the same path.
    single, (expected_single,) = tokenizer(TEXTS[0], **options), _reference(tokenizer, TEXTS[:1], options, shape)
    assert single["input_ids"] == expected_single.ids and _fields(single.encodings[0]) == _fields(expected_single)
    padded = {**{key: value for key, value in options.items() if key != "max_length"}, "padding": True}
    if options.get("truncation"):
        padded["max_length"] = options["max_length"]
    tensors = tokenizer(TEXTS[:2], return_tensors="pt", return_offsets_mapping=True, **padded)
    as_lists = tokenizer(TEXTS[:2], return_offsets_mapping=True, **padded)
    assert tensors.word_ids(1) == as_lists.word_ids(1)
    assert tensors["offset_mapping"].tolist() == [[list(pair) for pair in row] for row in as_lists["offset_mapping"]]
    assert tokenizer.backend_tokenizer.padding is None and tokenizer.backend_tokenizer.truncation is None


def test_threads_asking_for_different_padding_get_their_own(fast):
    tokenizer = CodeLlamaTokenizerFast(vocab_file=fast["codellama"].vocab_file, pad_token="<unk>")
    texts = ["def f(x):\n    return x\n" * 3, "y = 2", "import os"]
    settings = [options for options, _ in SHAPES]
    serial = [tokenizer(texts, **options)["input_ids"] for options in settings]
    mismatches: list[int] = []

    def run(slot: int) -> None:
        for _ in range(100):
            if tokenizer(texts, **settings[slot % len(settings)])["input_ids"] != serial[slot % len(settings)]:
                mismatches.append(slot)
                return

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []
    assert tokenizer.backend_tokenizer.padding is None and tokenizer.backend_tokenizer.truncation is None
