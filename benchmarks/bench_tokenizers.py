"""Tokenizer speed, measured side by side in one run (medians of alternating repeats), and exactness of
transformers' own Code Llama tokenizer on the same data.

    python benchmarks/bench_tokenizers.py [--megabytes 3] [--repeats 9]

Targets: fast batch encode >= 0.95x raw `tokenizers.Tokenizer.encode_batch` on the same model; batched infilling
>= 0.9x plain batched encode; slow >= 0.7x raw `sentencepiece` encode.

The fast tokenizer computes character offsets only when `BatchEncoding`'s alignment methods first ask for them, so
more rows keep the comparison honest: against raw `encode_batch_fast` (ids without offsets, the same work), the
fast call followed by reading every `Encoding` (the offsets computed after all), and `return_offsets_mapping=True`
(offsets asked for up front).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sentencepiece as spm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, alternating, real_code, save
from meta_tokenizer import MetaTokenizer  # the tests' independent restatement of Meta's tokenizer

from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast
from transformers_codellama.sentencepiece_backend import backend_from_sentencepiece

MODEL = SHARED_DATA / "codellama.model"

# What each timed call does, by result key (the report reads the keys; the labels are for people).
TIMED = {
    "raw_encode_batch": "raw tokenizers encode_batch",
    "raw_encode_batch_ids": "raw tokenizers encode_batch + ids",
    "raw_encode_batch_fast": "raw tokenizers encode_batch_fast",
    "fast": "fast batch encode",
    "fast_offsets_read": "fast batch encode, then every text's offsets read",
    "fast_offsets_mapping": "fast with return_offsets_mapping",
    "fast_infilling": "fast batched infilling",
    "raw_padded": "raw tokenizers padded + truncated",
    "fast_padded": "fast padded + truncated",
    "raw_sentencepiece": "raw sentencepiece encode",
    "slow": "slow batch encode",
}
# Each ratio is (numerator key, denominator key, label): how many times the denominator's throughput.
RATIOS = {
    "fast_vs_raw": ("raw_encode_batch", "fast", "fast / raw tokenizers (target >= 0.95)"),
    "fast_vs_raw_ids": ("raw_encode_batch_ids", "fast", "fast / raw tokenizers with ids as Python lists"),
    "fast_vs_raw_fast": ("raw_encode_batch_fast", "fast", "fast / raw tokenizers encode_batch_fast (no offsets)"),
    "fast_offsets_read_vs_raw": ("raw_encode_batch", "fast_offsets_read", "fast, then all offsets read / raw"),
    "fast_offsets_mapping_vs_raw": (
        "raw_encode_batch",
        "fast_offsets_mapping",
        "fast with return_offsets_mapping / raw tokenizers",
    ),
    "fast_padded_vs_raw_padded": ("raw_padded", "fast_padded", "fast padded + truncated / raw tokenizers padding"),
    "infilling_vs_plain": ("fast", "fast_infilling", "fast infilling / fast plain (target >= 0.9)"),
    "slow_vs_sentencepiece": ("raw_sentencepiece", "slow", "slow / raw sentencepiece (target >= 0.7)"),
}


@dataclass(frozen=True)
class Corpus:
    """Real code cut at a random point per file: plain texts, and the same texts as infilling prompts."""

    texts: list[str]
    prefixes: list[str]
    suffixes: list[str]

    @classmethod
    def of(cls, megabytes: float) -> Corpus:
        texts = real_code(megabytes)
        rng = random.Random(0)
        cuts = [rng.randrange(len(text) + 1) for text in texts]
        return cls(
            texts,
            [text[:cut].replace("<FILL_ME>", "") for text, cut in zip(texts, cuts)],
            [text[cut:].replace("<FILL_ME>", "") for text, cut in zip(texts, cuts)],
        )

    @property
    def megabytes(self) -> float:
        return sum(len(text.encode()) for text in self.texts) / 1e6

    @property
    def plain(self) -> list[str]:
        return [prefix + suffix for prefix, suffix in zip(self.prefixes, self.suffixes)]

    @property
    def prompts(self) -> list[str]:
        return [prefix + "<FILL_ME>" + suffix for prefix, suffix in zip(self.prefixes, self.suffixes)]


def timed_calls(corpus: Corpus) -> dict[str, Callable[[], object]]:
    """The calls `TIMED` names, over the same texts."""
    plain, prompts = corpus.plain, corpus.prompts
    fast = CodeLlamaTokenizerFast(vocab_file=str(MODEL))
    slow = CodeLlamaTokenizer(vocab_file=str(MODEL))
    raw = backend_from_sentencepiece(MODEL.read_bytes())
    raw_sp = spm.SentencePieceProcessor(model_file=str(MODEL))
    # Padded calls: the fast tokenizer pads on its own (never reconfiguring a shared backend); `tokenizers` pads itself.
    padded_fast = CodeLlamaTokenizerFast(vocab_file=str(MODEL), pad_token="<unk>")
    raw_padded = backend_from_sentencepiece(MODEL.read_bytes())
    raw_padded.enable_padding(direction="left", pad_id=0, pad_token="<unk>")
    raw_padded.enable_truncation(2048)
    calls: dict[str, Callable[[], object]] = {
        "raw_encode_batch": lambda: raw.encode_batch(plain, add_special_tokens=False),
        "raw_encode_batch_ids": lambda: [e.ids for e in raw.encode_batch(plain, add_special_tokens=False)],
        "raw_encode_batch_fast": lambda: raw.encode_batch_fast(plain, add_special_tokens=False),
        "fast": lambda: fast(plain, add_special_tokens=False),
        "fast_offsets_read": lambda: list(fast(plain, add_special_tokens=False).encodings),
        "fast_offsets_mapping": lambda: fast(plain, add_special_tokens=False, return_offsets_mapping=True),
        "fast_infilling": lambda: fast(prompts),
        "raw_padded": lambda: [e.ids for e in raw_padded.encode_batch(plain, add_special_tokens=False)],
        "fast_padded": lambda: padded_fast(
            plain, add_special_tokens=False, padding=True, truncation=True, max_length=2048
        ),
        "raw_sentencepiece": lambda: raw_sp.encode(plain),
        "slow": lambda: slow(plain, add_special_tokens=False),
    }
    assert calls.keys() == TIMED.keys()
    return calls


def upstream_comparison(corpus: Corpus, repeats: int) -> dict[str, Any]:
    """transformers v5's own Code Llama tokenizer against ours: speed, and exactness against SentencePiece and
    Meta's infilling layout (restated independently by the tests' `MetaTokenizer`) on the same texts and cuts."""
    try:
        from transformers.models.code_llama import CodeLlamaTokenizer as UpstreamTokenizer
    except ImportError as error:
        return {"upstream": f"not available: {error}"}
    logging.getLogger("transformers").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:  # loaded as users load it: from a folder with tokenizer.model
        shutil.copy(MODEL, Path(folder) / "tokenizer.model")
        upstream = UpstreamTokenizer.from_pretrained(folder)
    fast = CodeLlamaTokenizerFast(vocab_file=str(MODEL))
    plain, prompts = corpus.plain, corpus.prompts
    times = alternating(
        {
            "ours": lambda: fast(plain, add_special_tokens=False),
            "upstream": lambda: upstream(plain, add_special_tokens=False),
        },
        repeats,
    )
    meta = MetaTokenizer(spm.SentencePieceProcessor(model_file=str(MODEL)))
    reference = [meta.encode(text, bos=False, eos=False) for text in plain]
    meta_infill = [meta.infilling_prompt(prefix, suffix) for prefix, suffix in zip(corpus.prefixes, corpus.suffixes)]
    upstream_plain = upstream(plain, add_special_tokens=False)["input_ids"]
    upstream_infill = 0
    for prompt, expected in zip(prompts, meta_infill):
        with contextlib.suppress(Exception):  # any failure counts as a mismatch
            upstream_infill += upstream(prompt)["input_ids"] == expected
    ours_plain = fast(plain, add_special_tokens=False)["input_ids"]
    return {
        "upstream_speed_vs_ours": times["ours"] / times["upstream"],
        "upstream_plain_matches": f"{sum(a == b for a, b in zip(upstream_plain, reference))}/{len(plain)}",
        "upstream_infill_matches": f"{upstream_infill}/{len(prompts)}",
        "upstream_len": len(upstream),
        "ours_plain_matches": f"{sum(a == b for a, b in zip(ours_plain, reference))}/{len(plain)}",
        "ours_infill_matches": f"{sum(a == b for a, b in zip(fast(prompts)['input_ids'], meta_infill))}/{len(prompts)}",
        "ours_len": len(fast),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=3.0, help="how much real code to encode")
    parser.add_argument("--repeats", type=int, default=9, help="alternating repeats; medians are reported")
    args = parser.parse_args()
    corpus = Corpus.of(args.megabytes)
    times = alternating(timed_calls(corpus), args.repeats)
    ratios = {key: times[numerator] / times[denominator] for key, (numerator, denominator, _) in RATIOS.items()}
    upstream = upstream_comparison(corpus, args.repeats)

    size = corpus.megabytes
    print(f"{len(corpus.texts)} files of real code, {size:.2f} MB, median of {args.repeats} alternating runs")
    for key, seconds in times.items():
        print(f"  {TIMED[key]:50s} {seconds * 1000:9.1f} ms   {size / seconds:6.2f} MB/s")
    for key, ratio in ratios.items():
        print(f"  {RATIOS[key][2]:50s} {ratio:.3f}x")
    for key, value in upstream.items():
        print(f"  {key:50s} {f'{value:.3f}x' if isinstance(value, float) else value}")
    labels = {**TIMED, **{key: label for key, (_, _, label) in RATIOS.items()}}
    save("tokenizers", {"megabytes": size, "seconds": times, "ratios": ratios, "upstream": upstream, "labels": labels})


if __name__ == "__main__":
    main()
