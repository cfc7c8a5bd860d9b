"""The one stop rule, against the ids SentencePiece itself gives the pieces Meta's decoding stops on."""

from __future__ import annotations

import pytest

from transformers_codellama.stopping import CHAT, COMPLETE, INFILL, stop_ids, until_stop


def test_stop_ids_by_mode(slow, fast, sp):
    eos, eot = sp["codellama"].eos_id(), sp["codellama"].piece_to_id("▁<EOT>")
    for tokenizer in (slow["codellama"], fast["codellama"]):
        assert stop_ids(tokenizer, COMPLETE) == [eos]
        assert stop_ids(tokenizer, INFILL) == [eot, eos]
        assert stop_ids(tokenizer, CHAT) == [eos]


def test_no_infilling_pieces_no_eot(slow):
    assert stop_ids(slow["llama2"], INFILL) == [slow["llama2"].eos_token_id]


def test_step_ends_a_70b_chat_turn(step_model_path):
    from transformers_codellama import CodeLlamaTokenizerFast

    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(step_model_path))
    assert stop_ids(tokenizer, CHAT) == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<step>")]
    assert tokenizer.step_id not in stop_ids(tokenizer, COMPLETE)


def test_unknown_mode(slow):
    with pytest.raises(ValueError, match="mode must be one of complete, infill, chat; got 'edit'"):
        stop_ids(slow["codellama"], "edit")


def test_until_stop():
    assert until_stop([5, 6, 2, 7], [2]) == [5, 6]
    assert until_stop([5, 6, 7], [2, 3]) == [5, 6, 7]
    assert until_stop([3, 5], [2, 3]) == []
    assert until_stop([], [2]) == []
