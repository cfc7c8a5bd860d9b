"""`CodeLlamaTokenizerMixin`: everything both Code Llama tokenizers share, so both produce the same ids by
construction: text encoding with added tokens, Meta's infilling layout, Meta's chat ids, BOS/EOS placement, padding and
tensors, and the Code Llama init arguments.

Each tokenizer class supplies the hooks (`_sentencepiece_ids`, `_piece_id`, and optionally `_plain_batch`); the rest is
built here from them. One plain call runs `_encode_plus` (transformers' entry) → `_plain_batch` (the class's own
fast path, or None) → `_batch_from_plain_texts` → `_batch_from_prompts` → `_text_ids` → `_sentencepiece_ids`; an
infilling call runs `_encode_plus` → `_batch_from_prompts` the same way. Methods named `_*_ids` return ids, `_batch_*`
return a `BatchEncoding`.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from transformers.tokenization_utils_base import BatchEncoding, TruncationStrategy

# `from .module import name` form only: transformers' remote-code loader copies the files these lines name.
from .chat import KNOWN_TEMPLATES, STEP_PIECE, Control, Segment, chat_ids, segments_for
from .infilling import (
    EOT_PIECE,
    FILL_TOKEN,
    MIDDLE_PIECE,
    PREFIX_PIECE,
    SENTINEL,
    SUFFIX_PIECE,
    InfillingIds,
    control_mask,
    encode_nolead,
    layout,
    split_fill_marker,
)
from .sentencepiece_backend import template_flags
from .stopping import INFILL, stop_ids, until_stop
from .whole_pieces import encode_with_whole_pieces, whole_piece_pattern

TextOrInfill = str | tuple[str, str]  # what one prompt of a call is: plain text, or (prefix, suffix) to infill

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


def base_init_kwargs(
    kwargs: dict[str, Any],
    vocab: Sequence[str] | dict[str, int],
    *,
    saved_post_processor: dict[str, Any] | None,
    add_bos_token: bool | None,
    add_eos_token: bool | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Code Llama's own init arguments, and the keyword arguments for transformers' base `__init__`.

    `add_bos_token`/`add_eos_token` left as None come from the saved `tokenizer.json` post-processor (transformers v5
    keeps them only there); text is always text (`split_special_tokens=True`: `"<s>"` in code is not BOS).
    """
    saved_bos, saved_eos = template_flags(saved_post_processor)
    code_llama_kwargs, base_kwargs = split_init_kwargs(kwargs, vocab)
    base_kwargs.update(
        add_bos_token=saved_bos if add_bos_token is None else add_bos_token,
        add_eos_token=saved_eos if add_eos_token is None else add_eos_token,
        split_special_tokens=base_kwargs.pop("split_special_tokens", True),
    )
    return code_llama_kwargs, base_kwargs


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


def _default_return_dict(method: Any) -> bool:
    parameter = inspect.signature(method).parameters.get("return_dict")
    return bool(parameter.default) if parameter is not None else False


# The mixin's methods run on transformers' tokenizer classes and use their API; only the type checker sees that base.
if TYPE_CHECKING:
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase as _TokenizerBase
else:
    _TokenizerBase = object


class CodeLlamaTokenizerMixin(_TokenizerBase):
    """Code Llama's text encoding, infilling, chat and BOS/EOS behaviour on top of a transformers tokenizer class.

    Mixed in before `PreTrainedTokenizer` (`CodeLlamaTokenizer`) or `PreTrainedTokenizerFast`
    (`CodeLlamaTokenizerFast`), which supply the hooks below.
    """

    padding_side = "left"  # Code Llama is a decoder: batched generation pads on the left
    model_input_names = ["input_ids", "attention_mask"]

    add_bos_token: bool
    add_eos_token: bool
    # Code Llama's own init arguments (`CODE_LLAMA_INIT_DEFAULTS`), set by `_init_code_llama`.
    prefix_token: str
    middle_token: str
    suffix_token: str
    eot_token: str
    fill_token: str
    suffix_first: bool
    _sentinel_ids: list[int]

    _whole_pieces: tuple[tuple[str, ...], Any] = ((), None)

    # ------------------------------------------------------------------------------- hooks the classes provide
    def _sentencepiece_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Hook: SentencePiece's ids of each text (implicit leading space, no BOS/EOS), added tokens not matched."""
        raise NotImplementedError

    def _piece_id(self, piece: str) -> int | None:
        """Hook: the id of a vocabulary piece, or None when the vocabulary lacks it."""
        raise NotImplementedError

    def _plain_batch(self, text: Any, text_pair: Any, kwargs: dict[str, Any]) -> BatchEncoding | None:
        """Hook: the `BatchEncoding` of a plain call the class serves itself; None hands it to transformers."""
        return None

    # ------------------------------------------------------------------------------------------------- set-up
    def _init_code_llama(self, code_llama_kwargs: dict[str, Any]) -> None:
        for key, value in code_llama_kwargs.items():
            setattr(self, key, value)
        # Saved to tokenizer_config.json (the base class saves `init_kwargs`).
        self.init_kwargs.update(code_llama_kwargs)
        self._sentinel_ids = self._sentencepiece_ids([SENTINEL])[0]

    def _whole_piece_pattern(self) -> Any:
        """The pattern of the pieces text is matched against whole: every non-special added token (SentencePiece's
        user-defined pieces, and tokens added with `add_tokens`). Special tokens never match: text is text."""
        pieces = tuple(token.content for token in self.added_tokens_decoder.values() if not token.special)
        if pieces != self._whole_pieces[0]:
            self._whole_pieces = (pieces, whole_piece_pattern(pieces))
        return self._whole_pieces[1]

    def _text_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """SentencePiece's ids of each text, with added tokens matched as user-defined pieces (see `whole_pieces`)."""
        pattern = self._whole_piece_pattern()
        if pattern is None:
            return self._sentencepiece_ids(texts)
        dummy_id = self._piece_id("▁")
        if dummy_id is None:
            raise ValueError("this vocabulary has no '▁' piece, which SentencePiece models always have")
        return encode_with_whole_pieces(
            texts,
            pattern,
            self._sentencepiece_ids,
            self.added_tokens_encoder.__getitem__,  # every whole piece is an added token
            dummy_id=dummy_id,
            sentinel_length=len(self._sentinel_ids),
        )

    # ------------------------------------------------------------------------------------------- properties
    @property
    def prefix_id(self) -> int | None:
        """Id of the `▁<PRE>` piece, or None when the model cannot infill."""
        return self._piece_id(self.prefix_token)

    @property
    def middle_id(self) -> int | None:
        """Id of the `▁<MID>` piece, or None when the model cannot infill."""
        return self._piece_id(self.middle_token)

    @property
    def suffix_id(self) -> int | None:
        """Id of the `▁<SUF>` piece, or None when the model cannot infill."""
        return self._piece_id(self.suffix_token)

    @property
    def eot_id(self) -> int | None:
        """Id of the `▁<EOT>` piece that ends a generated middle, or None when the model cannot infill."""
        return self._piece_id(self.eot_token)

    @property
    def step_id(self) -> int | None:
        """Id of the `<step>` piece that ends a 70B-Instruct turn, or None for the other models."""
        return self._piece_id(STEP_PIECE)

    @property
    def supports_infilling(self) -> bool:
        """Whether the vocabulary has the four infilling pieces (7B/13B base and Instruct, all 70B models)."""
        return None not in (self.prefix_id, self.middle_id, self.suffix_id, self.eot_id)

    def _infilling_control_ids(self) -> InfillingIds:
        prefix, suffix, middle, eot = self.prefix_id, self.suffix_id, self.middle_id, self.eot_id
        if prefix is None or suffix is None or middle is None or eot is None:
            raise ValueError(
                f"this tokenizer's vocabulary has no {self.prefix_token}/{self.suffix_token}/{self.middle_token}/"
                f"{self.eot_token} pieces, so its model cannot infill (Code Llama 34B and the Python models cannot)"
            )
        return InfillingIds(self.bos_token_id, prefix, suffix, middle, eot)

    # -------------------------------------------------------------------------------------------- encoding
    # transformers' hook; its many keyword arguments pass through `kwargs` (plus Code Llama's `suffix`, `suffix_first`).
    def _code_llama_encode_plus(self, text: Any = None, text_pair: Any = None, **kwargs: Any) -> BatchEncoding:
        suffix = kwargs.pop("suffix", None)
        suffix_first = kwargs.pop("suffix_first", None)
        suffix_first = self.suffix_first if suffix_first is None else suffix_first
        check_text(text, "text")
        if text_pair is not None:
            check_text(text_pair, "text_pair")
        prompts = self._infilling_prompts(text, text_pair, suffix)
        if prompts is not None:
            batched = not isinstance(text, str)
            return self._batch_from_prompts(prompts, batched=batched, suffix_first=suffix_first, **kwargs)
        encoded = self._plain_batch(text, text_pair, kwargs)
        if encoded is not None:
            return encoded
        return super()._encode_plus(text=text, text_pair=text_pair, **kwargs)

    # Installed under transformers' name for both backends, whose `_encode_plus` keyword lists differ from each other
    # (PythonBackend has no `return_offsets_mapping`, TokenizersBackend types `return_tensors` as a bool): no one
    # signature overrides both, so the hook is typed as what it is, a callable taking either list.
    _encode_plus: Callable[..., BatchEncoding] = _code_llama_encode_plus

    def _infilling_prompts(self, text: Any, text_pair: Any, suffix: Any) -> list[TextOrInfill] | None:
        """The prompts of an infilling call, or None when nothing is to be infilled."""
        texts = [text] if isinstance(text, str) else text
        if suffix is not None:
            check_text(suffix, "suffix")
            suffixes = [suffix] if isinstance(suffix, str) else suffix
            if isinstance(text, str) != isinstance(suffix, str) or len(suffixes) != len(texts):
                raise ValueError("suffix= must be a string for a single prompt, or a list as long as the batch")
        if not all(isinstance(item, str) for item in texts):
            if suffix is not None:
                raise TypeError("infilling takes text prompts (strings), not pre-tokenized input")
            return None
        split = [split_fill_marker(item, self.fill_token) for item in texts]
        if suffix is not None:
            if any(parts is not None for parts in split):
                raise ValueError(f"pass either a {self.fill_token} marker in the text or suffix=, not both")
            return list(zip(texts, suffixes))
        if all(parts is None for parts in split):
            return None
        if text_pair is not None:
            raise ValueError("an infilling prompt cannot be combined with text_pair")
        return [item if parts is None else parts for item, parts in zip(texts, split)]

    def _batch_from_prompts(
        self,
        prompts: Sequence[TextOrInfill],
        *,
        batched: bool,
        suffix_first: bool,
        add_special_tokens: bool = True,
        truncation_strategy: Any = TruncationStrategy.DO_NOT_TRUNCATE,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """The `BatchEncoding` of plain and infilling prompts, all encoded by one batched call of `_text_ids`."""
        if kwargs.get("return_offsets_mapping"):
            raise ValueError("return_offsets_mapping is not available for infilling prompts")
        infill = [prompt for prompt in prompts if isinstance(prompt, tuple)]
        plain = [prompt for prompt in prompts if isinstance(prompt, str)]
        encoded = self._text_ids([prefix for prefix, _ in infill] + plain)
        suffixes = encode_nolead(self._text_ids, [suffix for _, suffix in infill])
        infill_parts = iter(zip(encoded[: len(infill)], suffixes))
        plain_parts = iter(encoded[len(infill) :])
        truncating = truncation_strategy not in (TruncationStrategy.DO_NOT_TRUNCATE, "do_not_truncate", False, None)
        limit = max_length if truncating else None
        built = [
            self._infilling_ids_and_mask(*next(infill_parts), suffix_first, add_special_tokens, limit)
            if isinstance(prompt, tuple)
            else self._plain_ids_and_mask(next(plain_parts), add_special_tokens, limit)
            for prompt in prompts
        ]
        sequences, masks = [sequence for sequence, _ in built], [mask for _, mask in built]
        return self._batch_from_ids(sequences, masks, batched=batched, max_length=max_length, **kwargs)

    def _batch_from_plain_texts(self, text: Any, texts: list[str], kwargs: dict[str, Any]) -> BatchEncoding:
        """The `BatchEncoding` of plain `texts` (the strings of the call's `text`): ids from `_text_ids`, padded and
        truncated here."""
        return self._batch_from_prompts(texts, batched=not isinstance(text, str), suffix_first=False, **kwargs)

    def _infilling_ids_and_mask(
        self, prefix: list[int], suffix: list[int], suffix_first: bool, add_bos: bool, limit: int | None
    ) -> tuple[list[int], list[int]]:
        sequence = layout(prefix, suffix, self._infilling_control_ids(), suffix_first=suffix_first, add_bos=add_bos)
        if limit is not None and len(sequence) > limit:
            raise ValueError(
                f"the infilling prompt is {len(sequence)} tokens, over max_length={limit}; "
                "truncating it would cut the infilling layout, shorten the prefix or suffix instead"
            )
        return sequence, control_mask(len(prefix), len(suffix), suffix_first=suffix_first, add_bos=add_bos)

    def _content_budget(self, limit: int, add_special: bool) -> int:
        """How many text tokens a sequence truncated to `limit` keeps (BOS/EOS take their places first)."""
        return max(limit - len(self.build_inputs_with_special_tokens([])), 0) if add_special else limit

    def _plain_ids_and_mask(
        self, content: list[int], add_special: bool, limit: int | None
    ) -> tuple[list[int], list[int]]:
        if limit is not None:
            budget = self._content_budget(limit, add_special)
            content = content[:budget] if self.truncation_side == "right" else content[len(content) - budget :]
        if not add_special:
            return content, [0] * len(content)
        return self.build_inputs_with_special_tokens(content), self.get_special_tokens_mask(content)

    def _batch_from_ids(
        self,
        sequences: list[list[int]],
        masks: list[list[int]],
        *,
        batched: bool,
        padding_strategy: Any = "do_not_pad",
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: Any = None,
        return_attention_mask: bool | None = None,
        return_token_type_ids: bool | None = None,
        return_special_tokens_mask: bool = False,
        return_length: bool = False,
        **_unused: Any,
    ) -> BatchEncoding:
        """The `BatchEncoding` of ready-made id sequences, padded and converted as transformers' `__call__` returns."""
        outputs: dict[str, Any] = {"input_ids": sequences}
        if return_token_type_ids:
            outputs["token_type_ids"] = [[0] * len(sequence) for sequence in sequences]
        if return_special_tokens_mask:
            outputs["special_tokens_mask"] = masks
        if return_length:
            outputs["length"] = [len(sequence) for sequence in sequences]
        padded = self.pad(
            outputs,
            padding=getattr(padding_strategy, "value", padding_strategy),
            max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_attention_mask=return_attention_mask,
        )
        if not batched:
            single = {key: value[0] for key, value in padded.items()}
            return BatchEncoding(single, tensor_type=return_tensors, prepend_batch_axis=return_tensors is not None)
        return BatchEncoding(dict(padded), tensor_type=return_tensors)

    def tokenize(
        self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any
    ) -> list[str]:
        """Pieces of `text`; for an infilling prompt, the pieces of its layout (matching the ids)."""
        if isinstance(text, str) and (kwargs.get("suffix") is not None or self.fill_token in text):
            encoded = self._encode_plus(text, add_special_tokens=add_special_tokens, **kwargs)
            return cast(list[str], self.convert_ids_to_tokens(encoded["input_ids"]))
        if isinstance(text, str) and pair is None and not kwargs:  # the pieces of exactly the ids `encode` gives
            ids = self._text_ids([text])[0]
            ids = self.build_inputs_with_special_tokens(ids) if add_special_tokens else ids
            return cast(list[str], self.convert_ids_to_tokens(ids))
        if pair is not None or add_special_tokens:
            kwargs.update(pair=pair, add_special_tokens=add_special_tokens)
        return super().tokenize(text, **kwargs)

    # -------------------------------------------------------------------------------------------- decoding
    def decode_infill(self, token_ids: Sequence[int]) -> str:
        """Decode a generated middle as Meta does: up to `▁<EOT>`/`</s>`, keeping its real leading space."""
        middle = until_stop([int(token) for token in token_ids], stop_ids(self, INFILL))
        text = cast(str, self.decode(self._sentinel_ids + middle, skip_special_tokens=True))
        return text[len(SENTINEL) :] if text.startswith(SENTINEL) else text

    # ------------------------------------------------------------------------------------------------ chat
    def apply_chat_template(self, conversation: Any, *args: Any, **kwargs: Any) -> Any:
        """Format a chat; with this package's templates, the ids are exactly Meta's `chat_completion` ids.

        Meta encodes each turn separately, which no rendered string reproduces, so for the Code Llama templates
        (see `transformers_codellama.chat`) `tokenize=True` builds the ids segment by segment. Custom templates,
        `tokenize=False`, tools, documents and assistant masks go through transformers unchanged.
        """
        template = kwargs.get("chat_template") or self.chat_template
        unsupported = ("tools", "documents", "continue_final_message", "return_assistant_tokens_mask")
        if (
            args
            or template not in KNOWN_TEMPLATES
            or not kwargs.get("tokenize", True)
            or any(kwargs.get(key) for key in unsupported)
        ):
            return super().apply_chat_template(conversation, *args, **kwargs)
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        conversations = conversation if batched else [conversation]
        sequences = [self._chat_ids(segments_for(template, messages)) for messages in conversations]
        return_dict = kwargs.get("return_dict", _default_return_dict(super().apply_chat_template))
        padding = kwargs.get("padding", False)
        encoded = self._batch_from_ids(
            sequences,
            [[0] * len(sequence) for sequence in sequences],
            batched=batched,
            padding_strategy="longest" if padding is True else (padding or "do_not_pad"),
            max_length=kwargs.get("max_length"),
            return_tensors=kwargs.get("return_tensors"),
            **(kwargs.get("tokenizer_kwargs") or {}),
        )
        return encoded if return_dict else encoded["input_ids"]

    def _chat_ids(self, segments: Sequence[Segment]) -> list[int]:
        controls = {Control.BOS: self.bos_token_id, Control.EOS: self.eos_token_id, Control.STEP: self.step_id}
        return chat_ids(segments, self._text_ids, controls)

    # --------------------------------------------------------------------------------------------- BOS/EOS
    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """Add BOS (and EOS, when `add_eos_token`) around each sequence, as Meta's `encode(bos=True)` does."""
        bos = [self.bos_token_id] if self.add_bos_token else []
        eos = [self.eos_token_id] if self.add_eos_token else []
        output = bos + list(token_ids_0) + eos
        if token_ids_1 is not None:
            output += bos + list(token_ids_1) + eos
        return output

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where `build_inputs_with_special_tokens` adds BOS/EOS (or, for built ids, where a special id is)."""
        if already_has_special_tokens:
            special = set(self.all_special_ids)
            return [1 if token in special else 0 for token in token_ids_0]
        bos = [1] if self.add_bos_token else []
        eos = [1] if self.add_eos_token else []
        mask = bos + [0] * len(token_ids_0) + eos
        if token_ids_1 is not None:
            mask += bos + [0] * len(token_ids_1) + eos
        return mask

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """0 for the first sequence and its special tokens, 1 for the second (Code Llama itself ignores them)."""
        first = len(self.build_inputs_with_special_tokens(token_ids_0))
        if token_ids_1 is None:
            return [0] * first
        return [0] * first + [1] * len(self.build_inputs_with_special_tokens(token_ids_1))

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> tuple[str, ...]:
        """Save as transformers does, keeping `add_bos_token`/`add_eos_token` (which transformers v5 drops)."""
        files = super().save_pretrained(save_directory, *args, **kwargs)
        prefix = kwargs.get("filename_prefix") or ""
        path = os.path.join(save_directory, (prefix + "-" if prefix else "") + "tokenizer_config.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                config = json.load(handle)
            config.update(add_bos_token=self.add_bos_token, add_eos_token=self.add_eos_token)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return files
