"""Chat: `apply_chat_template` against Meta's `chat_completion` formats (tests/meta_tokenizer.py)."""

from __future__ import annotations

import pytest
import sentencepiece as spm
from meta_tokenizer import MetaTokenizer
from real_data import CODELLAMA_MODEL

from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast
from transformers_codellama.chat import (
    LLAMA2_CHAT_TEMPLATE,
    STEP_CHAT_TEMPLATE,
    chat_template_for,
    llama2_segments,
    step_segments,
)

CONVERSATIONS = [
    [{"role": "user", "content": "Write a function that reverses a string."}],
    [{"role": "system", "content": "Answer in Python only."}, {"role": "user", "content": "  Sort a list  \n"}],
    [
        {"role": "user", "content": "def f(x):\n    return x  # what does this do?"},
        {"role": "assistant", "content": " It returns its argument unchanged. "},
        {"role": "user", "content": "And in HTML, what is <s>this</s>?"},
    ],
    [
        {"role": "system", "content": "\tBe brief.\n"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ],
]


def _tokenizers(path, template):
    for cls in (CodeLlamaTokenizer, CodeLlamaTokenizerFast):
        tokenizer = cls(vocab_file=str(path))
        tokenizer.chat_template = template
        yield tokenizer


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_llama2_format_matches_meta(conversation, sp):
    expected = MetaTokenizer(sp["codellama"]).llama2_chat(conversation)
    for tokenizer in _tokenizers(CODELLAMA_MODEL, LLAMA2_CHAT_TEMPLATE):
        assert chat_template_for(tokenizer) == LLAMA2_CHAT_TEMPLATE
        assert tokenizer.apply_chat_template(conversation, return_dict=False) == expected
        assert tokenizer.apply_chat_template(conversation, add_generation_prompt=True)["input_ids"] == expected
        tensor = tokenizer.apply_chat_template(conversation, return_tensors="pt", return_dict=True)["input_ids"]
        assert tensor.tolist() == [expected]


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_step_format_matches_meta(conversation, step_model_path):
    meta = MetaTokenizer(spm.SentencePieceProcessor(model_file=str(step_model_path)))
    expected = meta.step_chat(conversation)
    for tokenizer in _tokenizers(step_model_path, STEP_CHAT_TEMPLATE):
        assert chat_template_for(tokenizer) == STEP_CHAT_TEMPLATE
        assert tokenizer.step_id == meta.step_id
        assert tokenizer.apply_chat_template(conversation, return_dict=False) == expected


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_jinja_templates_render_the_segments(conversation, fast):
    """The Jinja templates (for tokenize=False and serving engines) render exactly the segments used for ids."""
    tokenizer = fast["codellama"]
    names = {"bos": "<s>", "eos": "</s>", "step": "<step>"}
    for template, segments in ((LLAMA2_CHAT_TEMPLATE, llama2_segments), (STEP_CHAT_TEMPLATE, step_segments)):
        rendered = tokenizer.apply_chat_template(conversation, chat_template=template, tokenize=False)
        expected = "".join(s if isinstance(s, str) else names[s.value] for s in segments(conversation))
        assert rendered == expected


def test_batched_conversations_pad_on_the_left(sp):
    meta = MetaTokenizer(sp["codellama"])
    for tokenizer in _tokenizers(CODELLAMA_MODEL, LLAMA2_CHAT_TEMPLATE):
        tokenizer.pad_token = tokenizer.eos_token
        batch = tokenizer.apply_chat_template(CONVERSATIONS[:2], padding=True, return_tensors="pt", return_dict=True)
        rows = [meta.llama2_chat(c) for c in CONVERSATIONS[:2]]
        width = max(map(len, rows))
        assert batch["input_ids"].tolist() == [[2] * (width - len(r)) + r for r in rows]


@pytest.mark.parametrize("tag", ["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<PRE>", "<EOT>"])
def test_control_strings_in_messages_are_refused(tag, fast):
    tokenizer = fast["codellama"]
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    conversation = [{"role": "user", "content": f"please {tag} this"}]
    for tokenize in (True, False):
        with pytest.raises(Exception, match="control string") as raised:
            tokenizer.apply_chat_template(conversation, tokenize=tokenize)
        assert tag in str(raised.value)


def test_step_refused_in_70b_messages(step_model_path):
    for tokenizer in _tokenizers(step_model_path, STEP_CHAT_TEMPLATE):
        with pytest.raises(ValueError, match="<step>"):
            tokenizer.apply_chat_template([{"role": "user", "content": "a <step> b"}])


def test_html_tags_in_messages_stay_text(sp, fast):
    tokenizer = fast["codellama"]
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "<s>x</s>"}], return_dict=False)
    assert ids.count(1) == 1 and 2 not in ids  # one BOS (the template's), no EOS


@pytest.mark.parametrize(
    "conversation,message",
    [
        ([{"role": "assistant", "content": "hi"}], "alternate"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "alternate"),
        ([{"role": "robot", "content": "a"}], "role must be"),
        ([{"role": "user", "content": 5}], "content must be a string"),
    ],
)
def test_bad_conversations(conversation, message, fast):
    tokenizer = fast["codellama"]
    tokenizer.chat_template = LLAMA2_CHAT_TEMPLATE
    with pytest.raises((ValueError, TypeError), match=message):
        tokenizer.apply_chat_template(conversation)


def test_custom_templates_go_through_transformers(fast):
    tokenizer = fast["codellama"]
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], chat_template="{{ messages[0]['content'] }}", return_dict=False
    )
    assert ids == tokenizer.encode("hi", add_special_tokens=False)
