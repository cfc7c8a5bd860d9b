"""What a Code Llama tokenizer accepts: its own init arguments and the inputs its fast paths serve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .infilling import EOT_PIECE, FILL_TOKEN, MIDDLE_PIECE, PREFIX_PIECE, SUFFIX_PIECE

# Init arguments specific to Code Llama, with their defaults.
CODE_LLAMA_INIT_DEFAULTS: dict[str, Any] = {
    "prefix_token": PREFIX_PIECE,
    "middle_token": MIDDLE_PIECE,
    "suffix_token": SUFFIX_PIECE,
    "eot_token": EOT_PIECE,
    "fill_token": FILL_TOKEN,
    "suffix_first": False,
}
# Keys that real Code Llama tokenizer_config.json files carry and that mean nothing here: `legacy` chose between
# two wrong-in-places encodings (this package always encodes as SentencePiece does); the others are v4 leftovers.
_IGNORED_INIT_KEYS = ("legacy", "use_default_system_prompt", "add_prefix_space", "spaces_between_special_tokens")


def split_init_kwargs(kwargs: dict[str, Any], vocab: Sequence[str] | dict[str, int]) -> tuple[dict, dict]:
    """Separate Code Llama's own init arguments from those for transformers' base class.

    The infilling pieces are vocabulary pieces, not added tokens: they are dropped from `additional_special_tokens`
    and `added_tokens_decoder` (transformers would otherwise match them in text or skip them when decoding, and
    `<FILL_ME>` would become a phantom extra token).
    """
    # `from_pretrained` moves every `*_token` config key into `model_specific_special_tokens`; ours are not
    # special tokens (the markers are vocabulary pieces, `<FILL_ME>` is no token at all), so take them back.
    specific = dict(kwargs.pop("model_specific_special_tokens", None) or {})
    own = {
        key: str(specific.pop(key)) if key in specific else kwargs.pop(key, default)
        for key, default in CODE_LLAMA_INIT_DEFAULTS.items()
    }
    if specific:
        kwargs["model_specific_special_tokens"] = specific
    for key in _IGNORED_INIT_KEYS:
        kwargs.pop(key, None)
    markers = {own["prefix_token"], own["middle_token"], own["suffix_token"], own["eot_token"], own["fill_token"]}
    for key in ("additional_special_tokens", "extra_special_tokens"):
        extra = kwargs.pop(key, None)
        if isinstance(extra, (list, tuple)):
            kept = [token for token in extra if str(token) not in markers]
            if kept:
                kwargs[key] = kept
    decoder = kwargs.pop("added_tokens_decoder", None)
    if decoder:
        kept_decoder = {
            index: token
            for index, token in decoder.items()
            if str(token) not in markers and (str(token) not in vocab or str(token) in ("<unk>", "<s>", "</s>"))
        }
        if kept_decoder:
            kwargs["added_tokens_decoder"] = kept_decoder
    return own, kwargs


def plain_texts(text: Any, text_pair: Any, kwargs: dict[str, Any]) -> list[str] | None:
    """The texts of a call that only plain encoding serves: strings, no pair, words, overflow windows, offsets, or
    `split_special_tokens=False` (those go through transformers' base class; the fast tokenizer serves offsets
    itself, asking without them)."""
    texts = [text] if isinstance(text, str) else text
    simple = (
        text_pair is None
        and all(isinstance(item, str) for item in texts)
        and not kwargs.get("is_split_into_words")
        and not kwargs.get("return_overflowing_tokens")
        and not kwargs.get("return_offsets_mapping")
        and kwargs.get("split_special_tokens", True)
    )
    return list(texts) if simple else None


def check_text(value: Any, name: str) -> None:
    """Reject input that is neither text nor a list of texts/pre-tokenized texts/ids, in one line."""
    if isinstance(value, str):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if not isinstance(item, (str, int, list, tuple)) or isinstance(item, bool):
                raise TypeError(f"{name}[{index}] must be a string; got {type(item).__name__}")
        return
    raise TypeError(f"{name} must be a string or a list of strings; got {type(value).__name__}")


__all__ = ["CODE_LLAMA_INIT_DEFAULTS", "check_text", "plain_texts", "split_init_kwargs"]
