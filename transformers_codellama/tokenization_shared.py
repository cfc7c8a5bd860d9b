"""Behaviour shared by `CodeLlamaTokenizer` and `CodeLlamaTokenizerFast`: text encoding and infilling, plus (from
`tokenization_chat` and `tokenization_special_tokens`) chat and BOS/EOS.

Each tokenizer class supplies one primitive, `_sentencepiece_encode(texts)`: SentencePiece's plain encode of a batch
of strings, without BOS/EOS. Everything Code Llama adds on top of plain text (tokens added with `add_tokens`, the
infilling layout, the chat formats, BOS/EOS placement) is assembled here from that primitive, so both classes
produce the same ids by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from transformers.tokenization_utils_base import BatchEncoding, TruncationStrategy

# `from .module import name` form only: transformers' remote-code loader copies the files these lines name.
from .chat import STEP_PIECE
from .infilling import (
    SENTINEL,
    InfillingIds,
    control_mask,
    layout,
    nolead_inputs,
    split_fill_marker,
)
from .stopping import INFILL, stop_ids, until_stop
from .tokenization_arguments import check_text
from .tokenization_chat import CodeLlamaChatMixin
from .tokenization_special_tokens import CodeLlamaSpecialTokensMixin
from .whole_pieces import encode_with_whole_pieces, whole_piece_pattern

Prompt = str | tuple[str, str]  # plain text, or (prefix, suffix) to infill


class CodeLlamaTokenizerMixin(CodeLlamaChatMixin, CodeLlamaSpecialTokensMixin):
    """Code Llama's infilling, chat and special-token behaviour on top of a transformers tokenizer backend."""

    padding_side = "left"  # Code Llama is a decoder: batched generation pads on the left
    model_input_names = ["input_ids", "attention_mask"]

    if TYPE_CHECKING:  # provided by transformers' tokenizer base classes
        init_kwargs: dict[str, Any]
        bos_token_id: int
        eos_token_id: int
        add_bos_token: bool
        add_eos_token: bool
        truncation_side: str
        chat_template: Any

    # Set by `_init_code_llama`.
    prefix_token: str
    middle_token: str
    suffix_token: str
    eot_token: str
    fill_token: str
    suffix_first: bool
    _sentinel_ids: list[int]

    _whole_pieces: tuple[tuple[str, ...], Any] = ((), None)

    # ----------------------------------------------------------------------------------------- provided by classes
    def _sentencepiece_encode(self, texts: Sequence[str]) -> list[list[int]]:
        """SentencePiece's encode of each text (implicit leading space, no BOS/EOS), added tokens not matched."""
        raise NotImplementedError

    def _encode_plain(self, text: Any, text_pair: Any, kwargs: dict[str, Any]) -> BatchEncoding | None:
        """A faster encode of plain text for the calls a class can serve itself; None: transformers' base encodes."""
        return None

    # ------------------------------------------------------------------------------------------------- set-up
    def _init_code_llama(self, own: dict[str, Any]) -> None:
        for key, value in own.items():
            setattr(self, key, value)
        # Saved to tokenizer_config.json (the base class saves `init_kwargs`).
        self.init_kwargs.update(own)
        self._sentinel_ids = self._sentencepiece_encode([SENTINEL])[0]

    def _whole_piece_pattern(self) -> Any:
        """The pattern of the pieces text is matched against whole: every non-special added token (SentencePiece's
        user-defined pieces, and tokens added with `add_tokens`). Special tokens never match: text is text."""
        pieces = tuple(token.content for token in self.added_tokens_decoder.values() if not token.special)  # type: ignore[attr-defined]
        if pieces != self._whole_pieces[0]:
            self._whole_pieces = (pieces, whole_piece_pattern(pieces))
        return self._whole_pieces[1]

    def _encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        """SentencePiece's encode of each text, with added tokens matched as user-defined pieces (see `whole_pieces`)."""
        pattern = self._whole_piece_pattern()
        if pattern is None:
            return self._sentencepiece_encode(texts)
        return encode_with_whole_pieces(
            texts,
            pattern,
            self._sentencepiece_encode,
            self.convert_tokens_to_ids,  # type: ignore[attr-defined]
            dummy_id=self._piece_id("▁"),  # type: ignore[arg-type]
            sentinel_length=len(self._sentinel_ids),
        )

    def _piece_id(self, piece: str) -> int | None:
        """Id of a vocabulary piece, or None when the vocabulary lacks it."""
        raise NotImplementedError

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

    def _infilling_ids(self) -> InfillingIds:
        if not self.supports_infilling:
            raise ValueError(
                f"this tokenizer's vocabulary has no {self.prefix_token}/{self.suffix_token}/{self.middle_token}/"
                f"{self.eot_token} pieces, so its model cannot infill (Code Llama 34B and the Python models cannot)"
            )
        return InfillingIds(self.bos_token_id, self.prefix_id, self.suffix_id, self.middle_id, self.eot_id)  # type: ignore[attr-defined,arg-type]

    # -------------------------------------------------------------------------------------------- encoding
    def _encode_plus(self, text: Any = None, text_pair: Any = None, **kwargs: Any) -> BatchEncoding:
        suffix = kwargs.pop("suffix", None)
        suffix_first = kwargs.pop("suffix_first", None)
        suffix_first = self.suffix_first if suffix_first is None else suffix_first
        check_text(text, "text")
        if text_pair is not None:
            check_text(text_pair, "text_pair")
        prompts = self._infilling_prompts(text, text_pair, suffix)
        if prompts is not None:
            batched = not isinstance(text, str)
            return self._encode_prompts(prompts, batched=batched, suffix_first=suffix_first, **kwargs)
        encoded = self._encode_plain(text, text_pair, kwargs)
        if encoded is not None:
            return encoded
        return super()._encode_plus(text=text, text_pair=text_pair, **kwargs)  # type: ignore[misc]

    def _infilling_prompts(self, text: Any, text_pair: Any, suffix: Any) -> list[Prompt] | None:
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

    def _encode_prompts(
        self,
        prompts: Sequence[Prompt],
        *,
        batched: bool,
        suffix_first: bool,
        add_special_tokens: bool = True,
        truncation_strategy: Any = TruncationStrategy.DO_NOT_TRUNCATE,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Encode plain and infilling prompts with one batched call of `_encode_texts`."""
        if kwargs.get("return_offsets_mapping"):
            raise ValueError("return_offsets_mapping is not available for infilling prompts")
        infill = [prompt for prompt in prompts if isinstance(prompt, tuple)]
        plain = [prompt for prompt in prompts if isinstance(prompt, str)]
        encoded = self._encode_texts(
            [prefix for prefix, _ in infill] + nolead_inputs([suffix for _, suffix in infill]) + plain
        )
        n, drop = len(infill), len(self._sentinel_ids)
        infill_parts = iter(zip(encoded[:n], (ids[drop:] for ids in encoded[n : 2 * n])))
        plain_parts = iter(encoded[2 * n :])
        truncating = truncation_strategy not in (TruncationStrategy.DO_NOT_TRUNCATE, "do_not_truncate", False, None)
        limit = max_length if truncating else None
        built = [
            self._infilling_sequence(*next(infill_parts), suffix_first, add_special_tokens, limit)
            if isinstance(prompt, tuple)
            else self._plain_sequence(next(plain_parts), add_special_tokens, limit)
            for prompt in prompts
        ]
        sequences, masks = [sequence for sequence, _ in built], [mask for _, mask in built]
        return self._assemble(sequences, masks, batched=batched, max_length=max_length, **kwargs)

    def _encode_plain_texts(self, text: Any, texts: list[str], kwargs: dict[str, Any]) -> BatchEncoding:
        """Plain `texts` (the strings of the call's `text`) assembled from `_encode_texts`, padded and truncated here."""
        return self._encode_prompts(texts, batched=not isinstance(text, str), suffix_first=False, **kwargs)

    def _infilling_sequence(
        self, prefix: list[int], suffix: list[int], suffix_first: bool, add_bos: bool, limit: int | None
    ) -> tuple[list[int], list[int]]:
        sequence = layout(prefix, suffix, self._infilling_ids(), suffix_first=suffix_first, add_bos=add_bos)
        if limit is not None and len(sequence) > limit:
            raise ValueError(
                f"the infilling prompt is {len(sequence)} tokens, over max_length={limit}; "
                "truncating it would cut the infilling layout, shorten the prefix or suffix instead"
            )
        return sequence, control_mask(len(prefix), len(suffix), suffix_first=suffix_first, add_bos=add_bos)

    def _content_budget(self, limit: int, add_special: bool) -> int:
        """How many text tokens a sequence truncated to `limit` keeps (BOS/EOS take their places first)."""
        return max(limit - len(self.build_inputs_with_special_tokens([])), 0) if add_special else limit

    def _plain_sequence(self, content: list[int], add_special: bool, limit: int | None) -> tuple[list[int], list[int]]:
        if limit is not None:
            budget = self._content_budget(limit, add_special)
            content = content[:budget] if self.truncation_side == "right" else content[len(content) - budget :]
        if not add_special:
            return content, [0] * len(content)
        return self.build_inputs_with_special_tokens(content), self.get_special_tokens_mask(content)

    def _assemble(
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
        """Pad and convert ready-made id sequences the way transformers' own `__call__` returns them."""
        outputs: dict[str, Any] = {"input_ids": sequences}
        if return_token_type_ids:
            outputs["token_type_ids"] = [[0] * len(sequence) for sequence in sequences]
        if return_special_tokens_mask:
            outputs["special_tokens_mask"] = masks
        if return_length:
            outputs["length"] = [len(sequence) for sequence in sequences]
        padded = self.pad(  # type: ignore[attr-defined]
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
            return self.convert_ids_to_tokens(encoded["input_ids"])  # type: ignore[attr-defined]
        if isinstance(text, str) and pair is None and not kwargs:  # the pieces of exactly the ids `encode` gives
            ids = self._encode_texts([text])[0]
            return self.convert_ids_to_tokens(self.build_inputs_with_special_tokens(ids) if add_special_tokens else ids)  # type: ignore[attr-defined]
        if pair is not None or add_special_tokens:
            kwargs.update(pair=pair, add_special_tokens=add_special_tokens)
        return super().tokenize(text, **kwargs)  # type: ignore[misc]

    # -------------------------------------------------------------------------------------------- decoding
    def decode_infill(self, token_ids: Sequence[int]) -> str:
        """Decode a generated middle as Meta does: up to `▁<EOT>`/`</s>`, keeping its real leading space."""
        middle = until_stop([int(token) for token in token_ids], stop_ids(self, INFILL))
        text = self.decode(self._sentinel_ids + middle, skip_special_tokens=True)  # type: ignore[attr-defined]
        return text[len(SENTINEL) :] if text.startswith(SENTINEL) else text
