"""Fill-in-the-middle training examples laid out exactly as Meta trained Code Llama and as our tokenizer prompts it.

The Code Llama paper (Rozière et al. 2023, §2.3) trains infilling with *causal masking*: a document is split at two
character positions drawn uniformly into prefix, middle and suffix, and, for 90% of the documents that fit one
context, the middle is moved to the end. Half of those examples use the prefix-suffix-middle layout (PSM), half the
"compatible" suffix-prefix-middle layout (SPM, variant 2 of Bavarian et al. 2022):

* PSM: `[BOS, ▁<PRE>] + enc(prefix) + [▁<SUF>] + enc_nolead(suffix) + [▁<MID>] + enc_nolead(middle) + [▁<EOT>]`
* SPM: `[BOS, ▁<PRE>, ▁<SUF>] + enc_nolead(suffix) + [▁<MID>] + enc(prefix + middle) + [▁<EOT>]`
* not transformed: `[BOS] + enc(document) + [</s>]`

`enc_nolead` encodes without SentencePiece's implicit leading space, as Meta does at inference. Every example's
tokens up to and including `▁<MID>` are built by the tokenizer's own infilling call
(`tokenizer(prefix, suffix=suffix, suffix_first=...)`), so a model trained on them is prompted exactly as it was
trained. The middle ends with `▁<EOT>` and nothing after it: Meta's generation stops on `▁<EOT>` alone, so that is
the token the model must learn to emit; `</s>` ends only untransformed documents.

Every example also carries `prompt_length`, the number of its leading tokens that an inference prompt supplies, so
that `FimDataCollator(middle_only=True)` can put the loss on what the model generates only.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..infilling import cannot_infill, nolead_ids
from ..token_sequences import shared_length

PSM, SPM, PLAIN = "psm", "spm", "plain"
DEFAULT_SEED = 0  # every entry point draws reproducibly unless told otherwise (seed=None: fresh randomness)


# ------------------------------------------------------------------------------------------------ examples
@dataclass(frozen=True)
class FimSplit:
    """A document cut into prefix, middle and suffix, and the layout to train it in."""

    prefix: str
    middle: str
    suffix: str
    suffix_first: bool = False


def _plain_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """`enc(text)` for each text: SentencePiece's ids, with the dummy prefix, without BOS/EOS."""
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]] if texts else []


def _check_infilling(tokenizer: Any) -> None:
    refusal = cannot_infill(None, tokenizer)
    if refusal is not None:
        raise ValueError(f"FIM examples cannot be built with {type(tokenizer).__name__}: {refusal}")


def fim_layouts(tokenizer: Any, splits: Sequence[FimSplit]) -> list[dict[str, Any]]:
    """Lay out already-split documents as FIM training examples (batched; see the module docstring).

    Returns one dict per split with `input_ids`, `labels` (a copy of `input_ids`: the loss covers every token, as
    in Bavarian et al. and Meta), `fim` (`"psm"` or `"spm"`) and `prompt_length`.

    Raises:
        ValueError: the tokenizer's vocabulary has no infilling pieces.
    """
    _check_infilling(tokenizer)
    out: list[dict[str, Any] | None] = [None] * len(splits)
    for suffix_first in (False, True):
        chosen = [i for i, split in enumerate(splits) if split.suffix_first == suffix_first]
        if not chosen:
            continue
        prompts = tokenizer(
            [splits[i].prefix for i in chosen], suffix=[splits[i].suffix for i in chosen], suffix_first=suffix_first
        )["input_ids"]
        if suffix_first:  # prefix and middle encoded together, the normal leading space included (paper §2.3)
            tails = _plain_ids(tokenizer, [splits[i].prefix + splits[i].middle for i in chosen])
        else:
            tails = nolead_ids(tokenizer, [splits[i].middle for i in chosen])
        for i, prompt, tail in zip(chosen, prompts, tails):
            prompt = list(prompt)
            head = prompt[: prompt.index(tokenizer.middle_id) + 1]
            ids = [*head, *tail, tokenizer.eot_id]
            # At inference an SPM prompt also holds enc(prefix) after ▁<MID>; the tokens it shares with
            # enc(prefix + middle) are given, not generated.
            given = len(head) + (shared_length(prompt[len(head) :], tail) if suffix_first else 0)
            out[i] = {
                "input_ids": ids,
                "labels": list(ids),
                "fim": SPM if suffix_first else PSM,
                "prompt_length": given,
            }
    return [example for example in out if example is not None]


def _plain_example(tokenizer: Any, ids: list[int], max_length: int | None) -> dict[str, Any]:
    full = [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
    if max_length is not None and len(full) > max_length:
        full = full[:max_length]  # the document goes on in the next context: no </s> here
    return {"input_ids": full, "labels": list(full), "fim": PLAIN, "prompt_length": 1}


def _document_rng(seed: int | None, text: str) -> random.Random:
    if seed is None:
        return random.Random()
    digest = hashlib.sha256(f"{seed}\0{text}".encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def draw_split(text: str, rng: random.Random, *, spm_rate: float = 0.5) -> FimSplit:
    """Cut `text` at two character positions drawn uniformly (empty parts allowed) and draw PSM or SPM."""
    suffix_first = rng.random() < spm_rate
    start, end = sorted(rng.randint(0, len(text)) for _ in range(2))
    return FimSplit(text[:start], text[start:end], text[end:], suffix_first)


def _check_rates(fim_rate: float, spm_rate: float) -> None:
    for name, rate in (("fim_rate", fim_rate), ("spm_rate", spm_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")


def fim_examples(
    texts: Sequence[str],
    tokenizer: Any,
    *,
    seed: int | None = DEFAULT_SEED,
    fim_rate: float = 0.9,
    spm_rate: float = 0.5,
    max_length: int | None = None,
) -> list[dict[str, Any]]:
    """`fim_example` for many documents at once (one batched tokenizer call per layout)."""
    _check_infilling(tokenizer)
    _check_rates(fim_rate, spm_rate)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"FIM examples are built from text documents (str), got {type(text).__name__}")
    plain = _plain_ids(tokenizer, texts)
    out: list[dict[str, Any]] = [{} for _ in texts]
    fim_at: list[int] = []
    splits: list[FimSplit] = []
    for i, (text, ids) in enumerate(zip(texts, plain)):
        rng = _document_rng(seed, text)
        # Only documents that fit one context are transformed (paper §2.3); FIM adds a few tokens, checked below.
        fits = max_length is None or len(ids) + 2 <= max_length
        if fits and rng.random() < fim_rate:
            fim_at.append(i)
            splits.append(draw_split(text, rng, spm_rate=spm_rate))
        else:
            out[i] = _plain_example(tokenizer, ids, max_length)
    for i, example in zip(fim_at, fim_layouts(tokenizer, splits)):
        too_long = max_length is not None and len(example["input_ids"]) > max_length
        out[i] = _plain_example(tokenizer, plain[i], max_length) if too_long else example
    return out


def fim_example(
    text: str,
    tokenizer: Any,
    *,
    seed: int | None = DEFAULT_SEED,
    fim_rate: float = 0.9,
    spm_rate: float = 0.5,
    max_length: int | None = None,
) -> dict[str, Any]:
    """Turn one code document into a training example, FIM-transformed as Code Llama was trained.

    Args:
        text: the document (e.g. a source file, or a chunk of one that fits the context).
        tokenizer: a `CodeLlamaTokenizer` or `CodeLlamaTokenizerFast` whose vocabulary has the infilling pieces.
        seed: makes the example reproducible: the same seed and text give the same example (the draws are seeded
            by a hash of both, so order, sharding and streaming do not matter). Defaults to `DEFAULT_SEED` (0), as
            in `fim_map_function`; None draws fresh randomness.
        fim_rate: probability that the document is FIM-transformed (paper: 0.9).
        spm_rate: probability that a transformed document uses the SPM layout rather than PSM (paper: 0.5).
        max_length: the training context in tokens. A document whose plain or FIM encoding does not fit is not
            transformed; it is returned as `[BOS] + enc(text)` cut to `max_length`.

    Returns:
        `{"input_ids", "labels", "fim", "prompt_length"}`: `labels` equals `input_ids`, `fim` is `"psm"`,
        `"spm"` or `"plain"`, and `prompt_length` counts the leading tokens an inference prompt supplies.

    Raises:
        ValueError: the tokenizer has no infilling pieces, or a rate is outside [0, 1].
    """
    return fim_examples([text], tokenizer, seed=seed, fim_rate=fim_rate, spm_rate=spm_rate, max_length=max_length)[0]


def fim_map_function(
    tokenizer: Any,
    *,
    text_column: str = "text",
    seed: int | None = DEFAULT_SEED,
    fim_rate: float = 0.9,
    spm_rate: float = 0.5,
    max_length: int | None = None,
) -> Callable[[dict[str, list[Any]]], dict[str, list[Any]]]:
    """A batched `datasets` map function building FIM examples from the `text_column` of each row.

    Use it with `Dataset.map` or a streaming `IterableDataset.map`:

        dataset.map(fim_map_function(tokenizer, max_length=4096), batched=True, remove_columns=dataset.column_names)

    It adds the columns `input_ids`, `labels`, `fim` and `prompt_length` (see `fim_example`, whose `seed` it
    takes, with the same default). Pass a different seed per epoch to draw new splits each epoch.
    """
    _check_infilling(tokenizer)
    _check_rates(fim_rate, spm_rate)

    def transform(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if text_column not in batch:
            raise KeyError(f"the dataset has no {text_column!r} column (columns: {sorted(batch)}); set text_column=")
        examples = fim_examples(
            batch[text_column], tokenizer, seed=seed, fim_rate=fim_rate, spm_rate=spm_rate, max_length=max_length
        )
        return {key: [example[key] for example in examples] for key in ("input_ids", "labels", "fim", "prompt_length")}

    return transform


__all__ = [
    "DEFAULT_SEED",
    "PLAIN",
    "PSM",
    "SPM",
    "FimSplit",
    "draw_split",
    "fim_example",
    "fim_examples",
    "fim_layouts",
    "fim_map_function",
]
