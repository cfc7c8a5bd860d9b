"""Saving, loading and the files real Code Llama checkpoints ship."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import sentencepiece as spm
from real_data import CODELLAMA_MODEL, code_cuts
from transformers import AutoTokenizer
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast
from transformers_codellama.chat import LLAMA2_CHAT_TEMPLATE
from transformers_codellama.tiny_tokenizer import append_pieces

SAMPLES = [p + "<FILL_ME>" + s for p, s in code_cuts(20, seed=7) if "<FILL_ME>" not in p + s] + [
    "def f(x):\n    return x\n",
    "  <s> </s>",
]

# The tokenizer_config.json of Meta-derived Code Llama checkpoints on the Hub (7B/13B, base and Instruct).
REAL_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": {
        "__type": "AddedToken",
        "content": "<s>",
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
    },
    "clean_up_tokenization_spaces": False,
    "eos_token": {
        "__type": "AddedToken",
        "content": "</s>",
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
    },
    "eot_token": "▁<EOT>",
    "fill_token": "<FILL_ME>",
    "legacy": None,
    "middle_token": "▁<MID>",
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": None,
    "prefix_token": "▁<PRE>",
    "sp_model_kwargs": {},
    "suffix_token": "▁<SUF>",
    "tokenizer_class": "CodeLlamaTokenizer",
    "unk_token": {
        "__type": "AddedToken",
        "content": "<unk>",
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
    },
    "use_default_system_prompt": False,
    "additional_special_tokens": ["▁<PRE>", "▁<MID>", "▁<SUF>", "▁<EOT>"],
    "added_tokens_decoder": {
        str(i): {
            "content": c,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for i, c in [
            (0, "<unk>"),
            (1, "<s>"),
            (2, "</s>"),
            (32007, "▁<PRE>"),
            (32008, "▁<SUF>"),
            (32009, "▁<MID>"),
            (32010, "▁<EOT>"),
        ]
    },
}


def _ids(tokenizer):
    return [tokenizer(sample)["input_ids"] for sample in SAMPLES]


@pytest.mark.parametrize("cls", [CodeLlamaTokenizer, CodeLlamaTokenizerFast])
def test_save_load_round_trip(cls, tmp_path, slow):
    original = cls(vocab_file=str(CODELLAMA_MODEL), suffix_first=True, add_eos_token=True)
    original.chat_template = LLAMA2_CHAT_TEMPLATE
    original.save_pretrained(tmp_path)
    assert {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in tmp_path.iterdir()}
    for loader in (cls, CodeLlamaTokenizer, CodeLlamaTokenizerFast, AutoTokenizer):
        reloaded = loader.from_pretrained(tmp_path)
        assert reloaded.suffix_first and reloaded.add_eos_token, loader
        assert _ids(reloaded) == _ids(original), loader
        assert reloaded.chat_template == LLAMA2_CHAT_TEMPLATE
        assert len(reloaded) == 32016
    # Either class writes the same exact backend: tokenizer.json alone rebuilds the tokenizer.
    only_json = CodeLlamaTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"), suffix_first=True)
    assert _ids(only_json) == _ids(original) and only_json.add_eos_token


def test_auto_tokenizer_returns_the_fast_class(tmp_path, slow):
    slow["codellama"].save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is CodeLlamaTokenizerFast
    assert _ids(loaded) == _ids(slow["codellama"])


def test_fast_saves_all_three_files_and_reloads_from_json_alone(tmp_path, fast):
    fast["codellama"].save_pretrained(tmp_path / "full")
    names = {p.name for p in (tmp_path / "full").iterdir()}
    assert {"tokenizer.model", "tokenizer.json", "tokenizer_config.json"} <= names
    only_json = tmp_path / "json"
    only_json.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tmp_path / "full" / name, only_json / name)
    reloaded = CodeLlamaTokenizerFast.from_pretrained(only_json)
    assert _ids(reloaded) == _ids(fast["codellama"])


def test_real_checkpoint_config_loads_quietly(tmp_path, slow, recwarn):
    shutil.copy(CODELLAMA_MODEL, tmp_path / "tokenizer.model")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(REAL_CONFIG))
    with warnings.catch_warnings(), CaptureLogger(logging.get_logger("transformers")) as logs:
        warnings.simplefilter("error")
        for cls in (CodeLlamaTokenizer, CodeLlamaTokenizerFast, AutoTokenizer):
            loaded = cls.from_pretrained(tmp_path)
            assert len(loaded) == 32016
            assert _ids(loaded) == _ids(slow["codellama"])
            # The infilling pieces are vocabulary pieces, not special tokens to skip: text survives decoding.
            assert loaded.decode(loaded(" <PRE> x")["input_ids"], skip_special_tokens=True) == " <PRE> x"
    assert logs.out == ""


def test_stale_tokenizer_json_is_replaced_by_an_exact_conversion(tmp_path, slow):
    """A tokenizer.json with a Metaspace pre-tokenizer (older conversions) is not trusted when tokenizer.model exists."""
    from tokenizers import pre_tokenizers

    fast = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    fast.save_pretrained(tmp_path)
    backend = fast.backend_tokenizer
    backend.normalizer = None
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    backend.save(str(tmp_path / "tokenizer.json"))
    reloaded = CodeLlamaTokenizerFast.from_pretrained(tmp_path)
    assert _ids(reloaded) == _ids(slow["codellama"])
    (tmp_path / "tokenizer.model").unlink()
    with pytest.raises(ValueError, match="does not encode as SentencePiece"):
        CodeLlamaTokenizerFast.from_pretrained(tmp_path)


def test_pickle_round_trip(slow, fast):
    for tokenizer in (slow["codellama"], fast["codellama"]):
        clone = pickle.loads(pickle.dumps(tokenizer))
        assert _ids(clone) == _ids(tokenizer)


def test_save_vocabulary(tmp_path, slow, fast):
    for tokenizer in (slow["codellama"], fast["codellama"]):
        (path,) = tokenizer.save_vocabulary(str(tmp_path), filename_prefix=type(tokenizer).__name__)
        assert Path(path).read_bytes() == CODELLAMA_MODEL.read_bytes()


def test_update_post_processor(fast):
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    tokenizer.add_eos_token = True
    assert tokenizer("Hello world")["input_ids"] == [1, 15043, 3186, 2]
    tokenizer.add_bos_token = False
    assert tokenizer("Hello world")["input_ids"] == [15043, 3186, 2]
    slow = CodeLlamaTokenizer(vocab_file=str(CODELLAMA_MODEL), add_bos_token=False, add_eos_token=True)
    assert slow("Hello world")["input_ids"] == [15043, 3186, 2]


@pytest.mark.parametrize("cls", [CodeLlamaTokenizer, CodeLlamaTokenizerFast])
def test_missing_or_wrong_model_file(cls, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        cls(vocab_file=str(tmp_path / "nope.model"))
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"junk\.model") as raised:
        cls(vocab_file=str(tmp_path / "junk.model"))
    assert "\n" not in str(raised.value)


def test_tokens_added_later_are_matched_in_plain_text(sp):
    # The oracle: SentencePiece itself, before and after the token is appended as a user-defined piece.
    extended = spm.SentencePieceProcessor(
        model_proto=append_pieces(CODELLAMA_MODEL.read_bytes(), ["<custom>"], user_defined=True)
    )
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    assert tokenizer("x = <custom>")["input_ids"] == [1, *sp["codellama"].encode("x = <custom>")]
    assert tokenizer.add_tokens(["<custom>"]) == 1
    assert tokenizer.convert_tokens_to_ids("<custom>") == extended.piece_to_id("<custom>") == len(tokenizer) - 1
    assert tokenizer("x = <custom>")["input_ids"] == [1, *extended.encode("x = <custom>")]
