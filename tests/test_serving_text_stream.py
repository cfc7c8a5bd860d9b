"""Streamed text: the deltas add up to Meta's decode (SentencePiece itself), for real code and for byte-fallback ids."""

from __future__ import annotations

import random

from real_data import stdlib_sources

from transformers_codellama.serving.adapters.text_stream import IncrementalDecoder, StopStrings, TextStream

BYTE_IDS = range(3, 259)  # <0x00>..<0xFF>: byte-fallback pieces


def _real_id_runs(meta, count=40, length=60):
    """Runs of ids from real code, non-ASCII text included (byte-fallback pieces spelling multibyte characters)."""
    rng = random.Random(3)
    texts = [text for text in stdlib_sources(120) if len(text) > 400]
    texts.append("naïve café ☃ — 日本語のテキスト 🐍 ünïcödé\n" * 4)
    runs = []
    for _ in range(count):
        ids = meta.encode(rng.choice(texts), False, False)
        start = rng.randrange(max(1, len(ids) - length))
        runs.append(ids[start : start + length])
    runs.append(meta.encode("日本語 🐍🐍 ☃", False, False))
    return runs


def _streamed(decoder, ids):
    return "".join(decoder.push(token) for token in ids) + decoder.flush()


def test_middle_stream_equals_meta_decode_infilling(tokenizer, meta):
    for ids in _real_id_runs(meta):
        assert _streamed(IncrementalDecoder(tokenizer), ids) == meta.decode_infilling(ids)


def test_chat_stream_equals_meta_decode_alone(tokenizer, meta):
    for ids in _real_id_runs(meta):
        assert _streamed(IncrementalDecoder(tokenizer, keep_leading_space=False), ids) == meta.sp.decode(ids)


def test_completion_stream_reads_as_it_follows_the_prompt(tokenizer, meta):
    prompt = meta.encode("import", True, False)
    ids = meta.encode("os, sys  # système", False, False)  # "▁os": the dummy prefix reads as a space
    whole = meta.sp.decode(prompt + ids)
    assert (
        _streamed(IncrementalDecoder(tokenizer), ids) == whole[len(meta.sp.decode(prompt)) :] == " os, sys  # système"
    )


def test_no_delta_holds_a_broken_character_or_a_lost_space(tokenizer, meta):
    ids = meta.encode("x = '🐍 é'", False, False)
    assert any(token in BYTE_IDS for token in ids)
    decoder = IncrementalDecoder(tokenizer)
    deltas = [decoder.push(token) for token in ids]
    assert all("\ufffd" not in delta for delta in deltas)
    assert "".join(deltas) + decoder.flush() == " x = '🐍 é'"


def test_random_ids_with_byte_pieces_equal_the_whole_decode(tokenizer):
    rng = random.Random(0)
    for _ in range(150):
        ids = [rng.choice(BYTE_IDS) if rng.random() < 0.4 else rng.randrange(259, 32000) for _ in range(25)]
        for keep in (True, False):
            decoder = IncrementalDecoder(tokenizer, keep_leading_space=keep)
            assert _streamed(decoder, ids) == decoder.text()
    assert IncrementalDecoder(tokenizer).text() == ""


def test_stop_strings_cut_before_the_first_match_across_deltas():
    stops = StopStrings(["\ndef ", "END"])
    pieces = ["x = 1", "\n", "de", "f y", "()"]
    out = "".join(stops.feed(piece) for piece in pieces)
    assert (out, stops.matched) == ("x = 1", "\ndef ")
    assert stops.feed("more") == "" and stops.flush() == ""
    held = StopStrings(["END"])
    assert held.feed("a E") == "a " and held.feed("N") == "" and held.flush() == "EN"
    assert StopStrings([]).feed("anything") == "anything"
    earliest = StopStrings(["bc", "abcd"])
    assert earliest.feed("xabcd") == "x" and earliest.matched == "abcd"


def test_text_stream_with_stops_equals_the_cut_whole_text(tokenizer, meta):
    for ids in _real_id_runs(meta, count=25):
        whole = meta.decode_infilling(ids)
        for stop in ["\n", "  ", ")", "e", "no such stop"]:
            stream = TextStream(tokenizer, stop=[stop])
            sent = [stream.push(token) for token in ids]
            sent.append(stream.finish())
            expected = whole.split(stop)[0]
            assert "".join(sent) == stream.text == expected
            assert stream.stop_string == (stop if stop in whole else None)
