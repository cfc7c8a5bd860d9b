"""Prompts the server builds: editor templates parsed into Meta's layout, the infilling budget, completion and chat."""

from __future__ import annotations

import pytest
from real_data import CODELLAMA_MODEL, code_cuts, stdlib_sources

from transformers_codellama.serving.adapters.prompts import (
    chat_prompt,
    completion_prompt,
    extra_context,
    infill_budget,
    infilling_prompt,
    parse_editor_template,
    split_infilling,
)
from transformers_codellama.serving.http.errors import ServingError
from transformers_codellama.stopping import COMPLETE, INFILL

BIG = 100_000


def _cuts(count, seed):
    return [(p, s) for p, s in code_cuts(count, seed=seed) if not any(m in p + s for m in ("<PRE>", "<SUF>", "<MID>"))]


def test_continue_template_gives_metas_layout_where_tokenizing_the_text_does_not(tokenizer, meta):
    differs = 0
    for prefix, suffix in _cuts(60, seed=5):
        template = f"<PRE> {prefix} <SUF>{suffix} <MID>"  # Continue, Tabby, llm-vscode, Ollama
        assert parse_editor_template(template) == (prefix, suffix)
        parsed = split_infilling(template)
        assert parsed is not None
        prompt = infilling_prompt(tokenizer, *parsed, max_context=BIG, max_new_tokens=16)
        expected = meta.infilling_prompt(prefix, suffix)
        assert prompt.ids == expected and prompt.mode == INFILL and not prompt.truncated
        differs += meta.encode(template, True, False) != expected
    assert differs > 0  # the text tokenized as such is not Meta's layout


def test_template_variants():
    assert parse_editor_template("<PRE> a = <SUF>(1)<MID>") == ("a =", "(1)")  # no space before <MID>
    assert parse_editor_template("<PRE>a<SUF>b<MID>") == ("a", "b")
    assert parse_editor_template("<PRE> x <SUF>\r\ny <MID>") == ("x", "\r\ny")  # CRLF after <SUF>
    assert parse_editor_template("<PRE> x <SUF> y <MID>") == ("x", " y")  # twinny: the space is the suffix's
    assert parse_editor_template("<PRE>  x  <SUF>  <MID>") == (" x ", " ")
    assert parse_editor_template("def f(): <PRE> <SUF> <MID>") is None
    assert parse_editor_template("<PRE> x <SUF> y <MID>\n") is None
    with pytest.raises(ServingError, match="exactly one"):
        parse_editor_template("<PRE> a <SUF> b <SUF> c <MID>")
    assert split_infilling("a<FILL_ME>b") == ("a", "b")
    assert split_infilling("plain") is None
    with pytest.raises(ServingError, match="FILL_ME"):
        split_infilling("<FILL_ME><FILL_ME>")


def test_completion_prompt_and_its_limit(tokenizer, meta):
    prompt = completion_prompt(tokenizer, "import os\n", max_context=BIG, max_new_tokens=5)
    assert prompt.ids == meta.encode("import os\n", True, False) and prompt.mode == COMPLETE
    with pytest.raises(ServingError, match="maximum context length is 10 tokens") as caught:
        completion_prompt(tokenizer, "import os, sys\n", max_context=10, max_new_tokens=5)
    assert caught.value.code == "context_length_exceeded" and caught.value.status == 400


def test_infill_budget_rule():
    assert infill_budget(10, 10, 20) == (10, 10)
    assert infill_budget(100, 100, 40) == (30, 10)  # the suffix keeps a quarter
    assert infill_budget(5, 100, 40) == (5, 35)  # a short prefix leaves the suffix the rest
    assert infill_budget(100, 3, 40) == (37, 3)
    assert infill_budget(0, 0, 0) == (0, 0)


@pytest.mark.parametrize("max_context", [64, 300])
def test_infilling_truncation_cuts_prefix_start_and_suffix_end(tokenizer, meta, max_context):
    source = next(text for text in stdlib_sources(60) if len(text) > 20_000)
    prefix, suffix = source[:6000], source[6000:12000]
    max_new = 16
    prompt = infilling_prompt(tokenizer, prefix, suffix, max_context=max_context, max_new_tokens=max_new)
    assert prompt.truncated
    assert prefix.endswith(prompt.prefix) and suffix.startswith(prompt.suffix)
    assert prompt.ids == meta.infilling_prompt(prompt.prefix, prompt.suffix)  # still exactly Meta's layout
    room = max_context - max_new - 4
    assert room - 2 <= len(prompt.ids) - 4 <= room  # fills the budget, up to a merge at a cut
    suffix_tokens = len(meta.encode_infilling(prompt.suffix))
    assert abs(suffix_tokens - room // 4) <= 1
    with pytest.raises(ServingError, match="leaves no room") as caught:
        infilling_prompt(tokenizer, "a", "b", max_context=10, max_new_tokens=8)
    assert caught.value.param == "max_tokens"


def test_chat_prompt_is_metas_and_base_models_are_refused(fast, meta):
    from transformers_codellama.chat import chat_template_for

    tokenizer = fast["codellama"]
    with pytest.raises(ServingError, match="no chat template"):
        chat_prompt(tokenizer, [{"role": "user", "content": "hi"}], max_context=BIG, max_new_tokens=4)
    instruct = type(tokenizer)(vocab_file=str(CODELLAMA_MODEL))
    instruct.chat_template = chat_template_for(instruct)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Sort a list in Python."}]
    prompt = chat_prompt(instruct, messages, max_context=BIG, max_new_tokens=4)
    assert prompt.ids == meta.llama2_chat(messages)
    with pytest.raises(ServingError, match="role"):
        chat_prompt(instruct, [{"role": "robot", "content": "x"}], max_context=BIG, max_new_tokens=4)


def test_extra_context_goes_before_the_prefix():
    chunks = [{"filename": "a.py", "text": "x = 1"}, {"text": "y = 2\n"}]
    assert extra_context(chunks) == "--- a.py ---\nx = 1\n--- tmp ---\ny = 2\n"
    assert extra_context([]) == ""
