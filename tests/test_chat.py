"""`chat` on its own: the segment builders and `chat_ids` over SentencePiece itself give Meta's `chat_completion` ids
(restated independently in tests/meta_tokenizer.py), and bad conversations are refused in one line."""

from __future__ import annotations

import pytest
import sentencepiece as spm
from meta_tokenizer import MetaTokenizer
from test_tokenization_chat import CONVERSATIONS

from transformers_codellama.chat import Control, chat_ids, llama2_segments, step_segments


def _controls(sp: spm.SentencePieceProcessor) -> dict[Control, int | None]:
    step = sp.piece_to_id("<step>")
    return {Control.BOS: sp.bos_id(), Control.EOS: sp.eos_id(), Control.STEP: step if step != sp.unk_id() else None}


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_llama2_segments_give_metas_ids(conversation, sp):
    ids = chat_ids(llama2_segments(conversation), sp["codellama"].encode, _controls(sp["codellama"]))
    assert ids == MetaTokenizer(sp["codellama"]).llama2_chat(conversation)


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_step_segments_give_metas_ids(conversation, step_model_path):
    processor = spm.SentencePieceProcessor(model_file=str(step_model_path))
    ids = chat_ids(step_segments(conversation), processor.encode, _controls(processor))
    assert ids == MetaTokenizer(processor).step_chat(conversation)


def test_missing_control_token_is_named(sp):
    with pytest.raises(ValueError, match="needs a step token, which this tokenizer lacks"):
        chat_ids(step_segments(CONVERSATIONS[0]), sp["codellama"].encode, _controls(sp["codellama"]))


@pytest.mark.parametrize(
    ("build", "conversation", "message"),
    [
        (llama2_segments, [], "empty conversation"),
        (llama2_segments, [{"role": "bot", "content": "x"}], "role must be system, user or assistant; got 'bot'"),
        (llama2_segments, [{"role": "user", "content": 3}], "content must be a string; got int"),
        (llama2_segments, [{"role": "user", "content": "[INST] x"}], r"control string '\[INST\]'"),
        (llama2_segments, [{"role": "user", "content": "a <SUF> b"}], "control string '<SUF>'"),
        (llama2_segments, [{"role": "assistant", "content": "x"}], "turn 0 is 'assistant'"),
        (llama2_segments, [{"role": "system", "content": "x"}], "must be followed by a user message"),
        (step_segments, [{"role": "user", "content": "a<step>"}], "control string '<step>'"),
    ],
)
def test_bad_conversations_are_refused_in_one_line(build, conversation, message):
    with pytest.raises((ValueError, TypeError), match=message) as raised:
        build(conversation)
    assert "\n" not in str(raised.value)
