"""Tokenizer speed, measured side by side in one run (medians of alternating repeats), and exactness of
transformers' own Code Llama tokenizer on the same data.

    python benchmarks/bench_tokenizers.py [--megabytes 3] [--repeats 5]

Targets (issue 2): fast batch encode >= 0.95x raw `tokenizers.Tokenizer.encode_batch` on the same model; batched
infilling >= 0.9x plain batched encode; slow >= 0.7x raw `sentencepiece` encode.

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
from pathlib import Path

import sentencepiece as spm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, alternating, real_code, save

from transformers_codellama import CodeLlamaTokenizer, CodeLlamaTokenizerFast
from transformers_codellama.sentencepiece_backend import backend_from_sentencepiece


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=3.0, help="how much real code to encode")
    parser.add_argument("--repeats", type=int, default=9, help="alternating repeats; medians are reported")
    args = parser.parse_args()

    model = SHARED_DATA / "codellama.model"
    texts = real_code(args.megabytes)
    size_mb = sum(len(t.encode()) for t in texts) / 1e6
    rng = random.Random(0)
    cuts = [rng.randrange(len(t) + 1) for t in texts]
    prefixes = [t[:c].replace("<FILL_ME>", "") for t, c in zip(texts, cuts)]
    suffixes = [t[c:].replace("<FILL_ME>", "") for t, c in zip(texts, cuts)]
    prompts = [p + "<FILL_ME>" + s for p, s in zip(prefixes, suffixes)]
    plain = [p + s for p, s in zip(prefixes, suffixes)]

    fast = CodeLlamaTokenizerFast(vocab_file=str(model))
    slow = CodeLlamaTokenizer(vocab_file=str(model))
    raw_tokenizers = backend_from_sentencepiece(model.read_bytes())
    raw_sp = spm.SentencePieceProcessor(model_file=str(model))
    # Padded calls: the fast tokenizer pads on its own (never reconfiguring a shared backend); `tokenizers` pads itself.
    padded_fast = CodeLlamaTokenizerFast(vocab_file=str(model), pad_token="<unk>")
    raw_padded = backend_from_sentencepiece(model.read_bytes())
    raw_padded.enable_padding(direction="left", pad_id=0, pad_token="<unk>")
    raw_padded.enable_truncation(2048)

    times = alternating(
        {
            "raw tokenizers encode_batch": lambda: raw_tokenizers.encode_batch(plain, add_special_tokens=False),
            "raw tokenizers encode_batch + ids": lambda: [
                encoding.ids for encoding in raw_tokenizers.encode_batch(plain, add_special_tokens=False)
            ],
            "raw tokenizers encode_batch_fast": lambda: raw_tokenizers.encode_batch_fast(
                plain, add_special_tokens=False
            ),
            "fast batch encode": lambda: fast(plain, add_special_tokens=False),
            "fast batch encode + offsets": lambda: list(fast(plain, add_special_tokens=False).encodings),
            "fast with return_offsets_mapping": lambda: fast(
                plain, add_special_tokens=False, return_offsets_mapping=True
            ),
            "fast batched infilling": lambda: fast(prompts),
            "raw tokenizers padded + truncated": lambda: [
                encoding.ids for encoding in raw_padded.encode_batch(plain, add_special_tokens=False)
            ],
            "fast padded + truncated": lambda: padded_fast(
                plain, add_special_tokens=False, padding=True, truncation=True, max_length=2048
            ),
            "raw sentencepiece encode": lambda: raw_sp.encode(plain),
            "slow batch encode": lambda: slow(plain, add_special_tokens=False),
        },
        args.repeats,
    )
    ratios = {
        "fast / raw tokenizers (target >= 0.95)": times["raw tokenizers encode_batch"] / times["fast batch encode"],
        "fast / raw tokenizers with ids as Python lists": times["raw tokenizers encode_batch + ids"]
        / times["fast batch encode"],
        "fast / raw tokenizers encode_batch_fast (no offsets)": times["raw tokenizers encode_batch_fast"]
        / times["fast batch encode"],
        "fast, then all offsets read / raw tokenizers": times["raw tokenizers encode_batch"]
        / times["fast batch encode + offsets"],
        "fast with return_offsets_mapping / raw tokenizers": times["raw tokenizers encode_batch"]
        / times["fast with return_offsets_mapping"],
        "fast padded + truncated / raw tokenizers padding (ids as lists)": times["raw tokenizers padded + truncated"]
        / times["fast padded + truncated"],
        "fast infilling / fast plain (target >= 0.9)": times["fast batch encode"] / times["fast batched infilling"],
        "slow / raw sentencepiece (target >= 0.7)": times["raw sentencepiece encode"] / times["slow batch encode"],
    }

    # transformers v5's own Code Llama tokenizer, on the same texts and cut points.
    upstream_report = {}
    try:
        from transformers.models.code_llama import CodeLlamaTokenizer as UpstreamTokenizer

        logging.getLogger("transformers").setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as folder:  # loaded as users load it: from a folder with tokenizer.model
            shutil.copy(model, Path(folder) / "tokenizer.model")
            upstream = UpstreamTokenizer.from_pretrained(folder)
        upstream_times = alternating(
            {
                "fast batch encode": lambda: fast(plain, add_special_tokens=False),
                "upstream batch encode": lambda: upstream(plain, add_special_tokens=False),
            },
            args.repeats,
        )
        reference = raw_sp.encode(plain)
        upstream_ids = upstream(plain, add_special_tokens=False)["input_ids"]
        plain_matches = sum(a == b for a, b in zip(upstream_ids, reference))
        meta_infill = [
            [1, 32007, *raw_sp.encode(p), 32008, *raw_sp.encode("☺" + s)[2:], 32009] for p, s in zip(prefixes, suffixes)
        ]
        infill_matches = 0
        for prompt, expected in zip(prompts, meta_infill):
            with contextlib.suppress(Exception):  # any failure counts as a mismatch
                infill_matches += upstream(prompt)["input_ids"] == expected
        ours_plain = sum(a == b for a, b in zip(fast(plain, add_special_tokens=False)["input_ids"], reference))
        ours_infill = sum(a == b for a, b in zip(fast(prompts)["input_ids"], meta_infill))
        upstream_report = {
            "upstream speed vs ours (fast)": upstream_times["fast batch encode"]
            / upstream_times["upstream batch encode"],
            "upstream plain matches SentencePiece": f"{plain_matches}/{len(plain)}",
            "upstream infilling matches Meta": f"{infill_matches}/{len(prompts)}",
            "upstream len(tokenizer)": len(upstream),
            "ours plain matches SentencePiece": f"{ours_plain}/{len(plain)}",
            "ours infilling matches Meta": f"{ours_infill}/{len(prompts)}",
            "ours len(tokenizer)": len(fast),
        }
    except ImportError as error:
        upstream_report = {"upstream": f"not available: {error}"}

    print(f"{len(texts)} files of real code, {size_mb:.2f} MB, median of {args.repeats} alternating runs")
    for name, seconds in times.items():
        print(f"  {name:32s} {seconds * 1000:9.1f} ms   {size_mb / seconds:6.2f} MB/s")
    for name, ratio in ratios.items():
        print(f"  {name:46s} {ratio:.3f}x")
    for name, value in upstream_report.items():
        print(f"  {name:46s} {value if not isinstance(value, float) else f'{value:.3f}x'}")
    save("tokenizers", {"megabytes": size_mb, "seconds": times, "ratios": ratios, "upstream": upstream_report})


if __name__ == "__main__":
    main()
