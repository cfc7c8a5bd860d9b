"""Infilling: both tokenizers against Meta's layout built directly on SentencePiece (tests/meta_tokenizer.py)."""

from __future__ import annotations

import pytest
import torch
from meta_tokenizer import MetaTokenizer
from real_data import code_cuts

GOLDEN_PREFIX = 'def remove_non_ascii(s: str) -> str:\n    """ '
GOLDEN_SUFFIX = "\n    return result\n"
# Meta's output for the golden case, as quoted in llama.cpp issue 3503 (REFERENCE.md).
GOLDEN_IDS = [1, 32007, 822, 3349, 29918, 5464, 29918, 294, 18869, 29898, 29879, 29901, 851, 29897, 1599, 851,
              29901, 13, 1678, 9995, 29871, 32008, 13, 1678, 736, 1121, 13, 32009]  # fmt: skip


@pytest.fixture(scope="module")
def meta(sp):
    return {name: MetaTokenizer(processor) for name, processor in sp.items() if name != "llama2"}


@pytest.fixture(params=["slow", "fast"])
def tok(request):
    return request.getfixturevalue(request.param)


def test_golden_case(tok, meta):
    assert meta["codellama"].infilling_prompt(GOLDEN_PREFIX, GOLDEN_SUFFIX) == GOLDEN_IDS
    tokenizer = tok["codellama"]
    assert tokenizer(GOLDEN_PREFIX + "<FILL_ME>" + GOLDEN_SUFFIX)["input_ids"] == GOLDEN_IDS
    assert tokenizer(GOLDEN_PREFIX, suffix=GOLDEN_SUFFIX)["input_ids"] == GOLDEN_IDS
    assert tokenizer.encode(GOLDEN_PREFIX + "<FILL_ME>" + GOLDEN_SUFFIX) == GOLDEN_IDS


@pytest.mark.parametrize("model", ["codellama", "tiny"])
@pytest.mark.parametrize("suffix_first", [False, True])
def test_real_code_cuts_match_meta(tok, meta, model, suffix_first):
    tokenizer, reference = tok[model], meta[model]
    cuts = code_cuts(150, seed=10 + suffix_first)
    prompts = [prefix + "<FILL_ME>" + suffix for prefix, suffix in cuts if "<FILL_ME>" not in prefix + suffix]
    expected = [reference.infilling_prompt(*prompt.split("<FILL_ME>"), suffix_first=suffix_first) for prompt in prompts]
    assert tokenizer(prompts, suffix_first=suffix_first)["input_ids"] == expected
    assert [tokenizer(p, suffix_first=suffix_first)["input_ids"] for p in prompts[:30]] == expected[:30]
    prefixes, suffixes = zip(*(p.split("<FILL_ME>") for p in prompts))
    assert tokenizer(list(prefixes), suffix=list(suffixes), suffix_first=suffix_first)["input_ids"] == expected


def test_suffix_first_at_init_and_per_call(meta):
    from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast

    expected = meta["codellama"].infilling_prompt("a = ", "\nb", suffix_first=True)
    for cls in (CodeLlamaTokenizer, CodeLlamaTokenizerFast):
        tokenizer = cls(
            vocab_file=meta["codellama"].sp.serialized_model_proto and str(_path("codellama")), suffix_first=True
        )
        assert tokenizer("a = <FILL_ME>\nb")["input_ids"] == expected
        assert tokenizer("a = <FILL_ME>\nb", suffix_first=False)["input_ids"] == meta["codellama"].infilling_prompt(
            "a = ", "\nb"
        )


def _path(name):
    from real_data import MODELS

    return MODELS[name]


@pytest.mark.parametrize("prefix,suffix", [("", ""), ("", "x"), ("x", ""), (" ", " "), ("\n\n", "\n"), ("  a", "  b")])
def test_edge_prefixes_and_suffixes(tok, meta, prefix, suffix):
    for suffix_first in (False, True):
        expected = meta["codellama"].infilling_prompt(prefix, suffix, suffix_first=suffix_first)
        assert tok["codellama"](prefix + "<FILL_ME>" + suffix, suffix_first=suffix_first)["input_ids"] == expected


def test_no_special_tokens_drops_bos_only(tok):
    tokenizer = tok["codellama"]
    ids = tokenizer(GOLDEN_PREFIX + "<FILL_ME>" + GOLDEN_SUFFIX, add_special_tokens=False)["input_ids"]
    assert ids == GOLDEN_IDS[1:]
    assert tokenizer.tokenize(GOLDEN_PREFIX + "<FILL_ME>" + GOLDEN_SUFFIX) == tokenizer.convert_ids_to_tokens(ids)
    mask = tokenizer(GOLDEN_PREFIX + "<FILL_ME>" + GOLDEN_SUFFIX, return_special_tokens_mask=True)[
        "special_tokens_mask"
    ]
    assert [i for i, flag in enumerate(mask) if flag] == [
        i for i, t in enumerate(GOLDEN_IDS) if t in (1, 32007, 32008, 32009)
    ]


def test_tensors_and_left_padding(tok, tmp_path):
    tokenizer = tok["codellama"]
    prompts = ["def f(x):\n    <FILL_ME>\n", "x = <FILL_ME>", "print('plain prompt in the same batch')"]
    single = tokenizer(prompts[0], return_tensors="pt")
    assert single["input_ids"].shape == (1, len(tokenizer(prompts[0])["input_ids"]))
    with pytest.raises(ValueError, match="pad"):
        tokenizer(prompts, padding=True, return_tensors="pt")
    padded_tokenizer = tokenizer.__class__.from_pretrained(_saved(tokenizer, tmp_path))
    padded_tokenizer.pad_token = padded_tokenizer.eos_token
    batch = padded_tokenizer(prompts, padding=True, return_tensors="pt")
    rows = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(map(len, rows))
    assert batch["input_ids"].shape == (3, width)
    for row, ids, mask in zip(rows, batch["input_ids"], batch["attention_mask"]):
        pad = width - len(row)
        assert ids.tolist() == [2] * pad + row  # left padding, for generation
        assert mask.tolist() == [0] * pad + [1] * len(row)
    assert torch.equal(batch["input_ids"][2, -len(rows[2]) :], torch.tensor(rows[2]))


def _saved(tokenizer, directory):
    tokenizer.save_pretrained(directory)
    return directory


def test_decode_infill_matches_meta(tok, meta, sp):
    tokenizer, reference = tok["codellama"], meta["codellama"]
    for _, middle in code_cuts(100, seed=4, max_len=200):
        generated = reference.encode_infilling(middle)
        assert tokenizer.decode_infill([*generated, reference.eot_id, 5, 6]) == reference.decode_infilling(generated)
        assert tokenizer.decode_infill(generated) == reference.decode_infilling(generated)
    # A real leading space of the middle's first token is kept (SentencePiece's decode would drop it).
    ids = sp["codellama"].encode(" return x")[1:]
    assert tokenizer.decode_infill(ids) == " return x"


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda t: t("a<FILL_ME>b<FILL_ME>c"), ValueError, "exactly one <FILL_ME>"),
        (lambda t: t("a<FILL_ME>b", suffix="c"), ValueError, "not both"),
        (lambda t: t(["a<FILL_ME>b"], suffix="c"), ValueError, "as long as the batch"),
        (lambda t: t("a<FILL_ME>b", text_pair="c"), ValueError, "text_pair"),
        (lambda t: t(123), TypeError, "text must be a string"),
        (lambda t: t(["ok", None]), TypeError, r"text\[1\] must be a string"),
        (lambda t: t("x", suffix=5), TypeError, "suffix must be a string"),
        (lambda t: t("a<FILL_ME>" * 2 + "c", truncation=True, max_length=3), ValueError, "exactly one"),
        (lambda t: t("a = <FILL_ME>\n" + "x" * 50, truncation=True, max_length=5), ValueError, "over max_length=5"),
    ],
)
def test_bad_input_is_one_clear_line(tok, call, error, message):
    with pytest.raises(error, match=message) as raised:
        call(tok["codellama"])
    assert "\n" not in str(raised.value)


def test_infilling_needs_the_pieces(tok):
    tokenizer = tok["llama2"]
    assert tokenizer.prefix_id is None and tokenizer.eot_id is None and not tokenizer.supports_infilling
    with pytest.raises(ValueError, match="cannot infill") as raised:
        tokenizer("def f():<FILL_ME>")
    assert "\n" not in str(raised.value)
    assert tok["codellama"].supports_infilling
    assert (
        tok["codellama"].prefix_id,
        tok["codellama"].suffix_id,
        tok["codellama"].middle_id,
        tok["codellama"].eot_id,
    ) == (32007, 32008, 32009, 32010)
