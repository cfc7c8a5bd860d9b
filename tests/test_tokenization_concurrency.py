"""One tokenizer instance used from 8 threads at once gives exactly the serial results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from real_data import CODELLAMA_MODEL, code_cuts

from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast


def _calls():
    cuts = [c for c in code_cuts(120, seed=21, max_len=400) if "<FILL_ME>" not in c[0] + c[1]]
    calls = []
    for index, (prefix, suffix) in enumerate(cuts):
        kind = index % 4
        if kind == 0:
            calls.append(((prefix + suffix,), {}))
        elif kind == 1:
            calls.append(((prefix + "<FILL_ME>" + suffix,), {}))
        elif kind == 2:
            calls.append(((prefix,), {"suffix": suffix, "suffix_first": True}))
        else:
            calls.append((([prefix + "<FILL_ME>" + suffix, prefix, suffix + "<FILL_ME>"],), {"return_tensors": None}))
    return calls


@pytest.mark.parametrize("cls", [CodeLlamaTokenizerFast, CodeLlamaTokenizer])
def test_eight_threads_match_serial(cls):
    tokenizer = cls(vocab_file=str(CODELLAMA_MODEL))
    calls = _calls() * 3
    serial = [tokenizer(*args, **kwargs)["input_ids"] for args, kwargs in calls]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda call: tokenizer(*call[0], **call[1])["input_ids"], calls))
    assert threaded == serial
    # The shared backend's configuration is what it was: infilling never touched it.
    if cls is CodeLlamaTokenizerFast:
        assert tokenizer.backend_tokenizer.padding is None and tokenizer.backend_tokenizer.truncation is None
