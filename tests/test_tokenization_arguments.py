"""The init-argument split and input checks of `tokenization_code_llama_mixin`, on a real Hub `tokenizer_config.json`."""

from __future__ import annotations

import copy

import pytest
from test_tokenization_serialization import REAL_CONFIG
from tokenizers import AddedToken

from transformers_codellama.tokenization_code_llama_mixin import (
    CODE_LLAMA_INIT_DEFAULTS,
    check_text,
    plain_texts,
    split_init_kwargs,
)


def test_real_config_keeps_the_markers_out_of_transformers(sp):
    vocab = [sp["codellama"].id_to_piece(index) for index in range(sp["codellama"].get_piece_size())]
    kwargs = copy.deepcopy(REAL_CONFIG)
    # As `from_pretrained` hands them over: the decoder's entries as `AddedToken`s under integer ids.
    kwargs["added_tokens_decoder"] = {
        int(i): AddedToken(**token) for i, token in kwargs["added_tokens_decoder"].items()
    }
    code_llama, rest = split_init_kwargs(kwargs, vocab)
    assert code_llama == CODE_LLAMA_INIT_DEFAULTS  # the real config names exactly the defaults
    assert "additional_special_tokens" not in rest  # only the four markers were listed
    assert {token.content for token in rest["added_tokens_decoder"].values()} == {"<unk>", "<s>", "</s>"}
    assert not {"legacy", "use_default_system_prompt", *CODE_LLAMA_INIT_DEFAULTS} & rest.keys()
    assert rest["bos_token"] == REAL_CONFIG["bos_token"] and rest["tokenizer_class"] == "CodeLlamaTokenizer"


def test_markers_come_back_from_model_specific_special_tokens():
    kwargs = {"model_specific_special_tokens": {"fill_token": "[HOLE]", "other_token": "<x>"}, "suffix_first": True}
    code_llama, rest = split_init_kwargs(kwargs, [])
    assert code_llama["fill_token"] == "[HOLE]" and code_llama["suffix_first"] is True
    assert rest == {"model_specific_special_tokens": {"other_token": "<x>"}}


def test_other_extra_tokens_are_kept():
    _, rest = split_init_kwargs({"additional_special_tokens": ["▁<PRE>", "<tool>"]}, [])
    assert rest == {"additional_special_tokens": ["<tool>"]}


def test_plain_texts_only_for_calls_plain_encoding_serves():
    assert plain_texts("a", None, {}) == ["a"]
    assert plain_texts(["a", "b"], None, {}) == ["a", "b"]
    assert plain_texts("a", "b", {}) is None
    assert plain_texts([["a", "b"]], None, {}) is None
    for flag in ("is_split_into_words", "return_overflowing_tokens", "return_offsets_mapping"):
        assert plain_texts("a", None, {flag: True}) is None
    assert plain_texts("a", None, {"split_special_tokens": False}) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [(3, "text must be a string or a list of strings; got int"), (["a", None], r"text\[1\] must be a string; got NoneType"),
     ([True], r"text\[0\] must be a string; got bool")],
)  # fmt: skip
def test_check_text_names_what_is_wrong(value, message):
    with pytest.raises(TypeError, match=message):
        check_text(value, "text")
    check_text(["a", [1, 2]], "text")  # texts and pre-tokenized inputs pass
