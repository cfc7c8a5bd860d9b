"""The infilling layout module on its own, against Meta's layout restated on SentencePiece (tests/meta_tokenizer.py)."""

from __future__ import annotations

import pytest
from meta_tokenizer import MetaTokenizer
from real_data import code_cuts

from transformers_codellama.infilling import (
    SENTINEL,
    InfillingIds,
    control_mask,
    layout,
    nolead_inputs,
    split_fill_marker,
)


def _ids(meta: MetaTokenizer) -> InfillingIds:
    return InfillingIds(meta.bos_id, meta.prefix_id, meta.suffix_id, meta.middle_id, meta.eot_id)


def _nolead(sp, suffix: str) -> list[int]:
    # What the tokenizers do with `nolead_inputs`: encode behind the sentinel, drop the sentinel's tokens.
    (encoded,) = sp.encode(nolead_inputs([suffix]))
    return encoded[len(sp.encode(SENTINEL)) :]


@pytest.mark.parametrize("suffix_first", [False, True])
def test_layout_is_metas_on_real_code(sp, meta, suffix_first):
    for prefix, suffix in code_cuts(60, seed=3):
        prefix_ids, suffix_ids = sp["codellama"].encode(prefix), _nolead(sp["codellama"], suffix)
        built = layout(prefix_ids, suffix_ids, _ids(meta), suffix_first=suffix_first, add_bos=True)
        assert built == meta.infilling_prompt(prefix, suffix, suffix_first=suffix_first)
        assert layout(prefix_ids, suffix_ids, _ids(meta), suffix_first=suffix_first, add_bos=False) == built[1:]


def test_golden_case(sp, meta):
    # REFERENCE.md's golden case, as Meta's code prints it.
    prefix, suffix = 'def remove_non_ascii(s: str) -> str:\n    """ ', "\n    return result\n"
    built = layout(
        sp["codellama"].encode(prefix), _nolead(sp["codellama"], suffix), _ids(meta), suffix_first=False, add_bos=True
    )
    assert built[:3] == [1, 32007, 822] and built[-7:] == [32008, 13, 1678, 736, 1121, 13, 32009]


@pytest.mark.parametrize("suffix_first", [False, True])
@pytest.mark.parametrize("add_bos", [False, True])
def test_control_mask_marks_exactly_the_control_ids(meta, suffix_first, add_bos):
    ids = _ids(meta)
    prefix, suffix = [100, 101, 102], [200, 201]
    built = layout(prefix, suffix, ids, suffix_first=suffix_first, add_bos=add_bos)
    mask = control_mask(len(prefix), len(suffix), suffix_first=suffix_first, add_bos=add_bos)
    controls = {ids.bos, ids.prefix, ids.suffix, ids.middle}
    assert mask == [int(token in controls) for token in built]


def test_nolead_suppresses_only_the_dummy_prefix(sp, meta):
    for _, suffix in code_cuts(40, seed=4):
        assert _nolead(sp["codellama"], suffix) == meta.encode_infilling(suffix)
    # A real leading space survives (it is text), the implicit one does not.
    assert _nolead(sp["codellama"], " x") != _nolead(sp["codellama"], "x")


def test_split_fill_marker():
    assert split_fill_marker("a <FILL_ME> b") == ("a ", " b")
    assert split_fill_marker("<FILL_ME>") == ("", "")
    assert split_fill_marker("no marker") is None
    assert split_fill_marker("x [HOLE] y", fill_token="[HOLE]") == ("x ", " y")
    with pytest.raises(ValueError, match="exactly one <FILL_ME> marker; found 2"):
        split_fill_marker("<FILL_ME><FILL_ME>")
