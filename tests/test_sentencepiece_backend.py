"""`sentencepiece_backend` on its own: the converted backend against SentencePiece, the BOS/EOS template and the flags
read back from it, and models it must refuse."""

from __future__ import annotations

import json

import pytest
import sentencepiece as spm
from real_data import CODELLAMA_MODEL, code_cuts
from tokenizers import Tokenizer, normalizers, pre_tokenizers

from transformers_codellama.sentencepiece_backend import (
    backend_from_sentencepiece,
    bos_eos_template,
    is_exact_backend,
    template_flags,
)


@pytest.fixture(scope="module")
def backend() -> Tokenizer:
    return backend_from_sentencepiece(CODELLAMA_MODEL.read_bytes())


def test_backend_encodes_and_decodes_as_sentencepiece(backend, sp):
    texts = [prefix + suffix for prefix, suffix in code_cuts(60, seed=11)]
    encoded = backend.encode_batch(texts, add_special_tokens=False)
    assert [encoding.ids for encoding in encoded] == sp["codellama"].encode(texts)
    assert [backend.decode(encoding.ids) for encoding in encoded] == sp["codellama"].decode(
        sp["codellama"].encode(texts)
    )


@pytest.mark.parametrize("add_bos", [False, True])
@pytest.mark.parametrize("add_eos", [False, True])
def test_template_flags_read_back_the_template(backend, sp, add_bos, add_eos):
    backend.post_processor = bos_eos_template(("<s>", 1), ("</s>", 2), add_bos=add_bos, add_eos=add_eos)
    bos, eos = [1] * add_bos, [2] * add_eos
    x, y = sp["codellama"].encode(["x", "y"])
    assert backend.encode("x", "y").ids == bos + x + eos + bos + y + eos
    saved = json.loads(backend.to_str())["post_processor"]
    assert template_flags(saved) == (add_bos, add_eos)


def test_template_flags_default_to_code_llamas():
    assert template_flags(None) == (True, False)
    assert template_flags({"type": "ByteLevel"}) == (True, False)


def test_exact_backend_is_recognised(backend):
    assert is_exact_backend(backend)
    metaspace = Tokenizer.from_str(backend.to_str())
    metaspace.normalizer = normalizers.Sequence([])
    metaspace.pre_tokenizer = pre_tokenizers.Metaspace()
    assert not is_exact_backend(metaspace)


def test_refuses_what_is_not_code_llamas_kind_of_model(tmp_path):
    with pytest.raises(ValueError, match=r"junk\.model is not a SentencePiece model"):
        backend_from_sentencepiece(b"\x00junk", source="junk.model")
    path = tmp_path / "unigram"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["def f(x):\n    return x\n"] * 50),
        model_prefix=str(path),
        vocab_size=40,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    with pytest.raises(
        ValueError, match=r"expected Code Llama's kind of SentencePiece model .* model_type=1"
    ) as raised:
        backend_from_sentencepiece((tmp_path / "unigram.model").read_bytes(), source="unigram.model")
    assert "\n" not in str(raised.value)
