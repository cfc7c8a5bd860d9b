"""`CodeLlamaTokenizerFast`: Meta's Code Llama tokenizer on the `tokenizers` library, id for id with SentencePiece."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from shutil import copyfile
from typing import Any

from tokenizers import AddedToken, Tokenizer
from transformers import BatchEncoding, PreTrainedTokenizerFast

# Remote code (`trust_remote_code=True`) on transformers 5.5 copies only the *direct* relative imports of this file
# into the module cache, so the modules the mixin imports are named here too (`from .x import` form: the copier reads
# these lines).
from .chat import KNOWN_TEMPLATES as _KNOWN_TEMPLATES  # noqa: F401
from .infilling import FILL_TOKEN as _FILL_TOKEN  # noqa: F401
from .lazy_encodings import LazyEncodings
from .sentencepiece_backend import backend_from_sentencepiece, is_exact_backend
from .stopping import MODES as _MODES  # noqa: F401
from .tokenization_code_llama import CodeLlamaTokenizer
from .tokenization_code_llama_mixin import CodeLlamaTokenizerMixin, base_init_kwargs, plain_texts
from .whole_pieces import whole_piece_pattern as _whole_piece_pattern  # noqa: F401

VOCAB_FILES_NAMES = {"vocab_file": "tokenizer.model", "tokenizer_file": "tokenizer.json"}


class CodeLlamaTokenizerFast(CodeLlamaTokenizerMixin, PreTrainedTokenizerFast):
    r"""
    Code Llama's tokenizer on the `tokenizers` library, with the same arguments and results as
    [`CodeLlamaTokenizer`], id for id.

    It loads `tokenizer.json` when that file has this package's SentencePiece-equivalent structure, and otherwise
    converts `tokenizer.model` exactly (older `tokenizer.json` files, and transformers v5's own conversion, differ
    from SentencePiece on leading whitespace). Plain text and infilling prompts are encoded with one batched call of
    a private, never-reconfigured copy of the backend, padded and truncated afterwards, so concurrent calls on one
    instance cannot disturb each other. Character offsets are computed the first time something reads them.

    Example:

    ```python
    >>> from transformers_codellama import TINY_MODEL_PATH, CodeLlamaTokenizerFast
    >>> tokenizer = CodeLlamaTokenizerFast(vocab_file=str(TINY_MODEL_PATH))
    >>> batch = tokenizer(["x = <FILL_ME>\n", "y = 2"])
    >>> batch["input_ids"][0][1] == tokenizer.prefix_id, batch["input_ids"][1][0] == tokenizer.bos_token_id
    (True, True)
    ```
    """

    vocab_files_names = VOCAB_FILES_NAMES
    # transformers declares `slow_tokenizer_class` as `None` on the base class, so any class assigned here is flagged.
    slow_tokenizer_class = CodeLlamaTokenizer  # type: ignore[assignment]

    def __init__(
        self,
        vocab_file: str | None = None,
        tokenizer_file: str | None = None,
        unk_token: str = "<unk>",
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        pad_token: str | None = None,
        add_bos_token: bool | None = None,
        add_eos_token: bool | None = None,
        clean_up_tokenization_spaces: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("tokenizer_object", None)
        backend = _load_backend(vocab_file, tokenizer_file)
        processor = backend.post_processor
        code_llama_kwargs, base_kwargs = base_init_kwargs(
            kwargs,
            backend.get_vocab(with_added_tokens=False),
            saved_post_processor=json.loads(processor.__getstate__()) if processor else None,
            add_bos_token=add_bos_token,
            add_eos_token=add_eos_token,
        )
        base_kwargs.pop("sp_model_kwargs", None)
        self.vocab_file = vocab_file
        super().__init__(
            tokenizer_object=backend,
            vocab_file=vocab_file,
            unk_token=unk_token,
            bos_token=bos_token,
            eos_token=eos_token,
            pad_token=pad_token,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **base_kwargs,
        )
        # A private encoder for plain text and infilling pieces: the same model, normalizer and post-processor,
        # never reconfigured (transformers reconfigures the main backend's padding/truncation per call).
        main = self.backend_tokenizer
        # An independent copy (its own model object) without
        # padding, truncation or added tokens: special tokens never come from text, and the others (user-defined
        # pieces, `add_tokens`) are matched by `_text_ids`, as SentencePiece matches them.
        state = json.loads(main.to_str())
        state.update(padding=None, truncation=None, added_tokens=[])
        self._text_backend = Tokenizer.from_str(json.dumps(state))
        self._init_code_llama(code_llama_kwargs)

    @classmethod
    def convert_to_native_format(cls, trust_remote_code: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Pass the files through untouched: `__init__` decides between tokenizer.json and tokenizer.model."""
        return kwargs

    @property
    def can_save_slow_tokenizer(self) -> bool:
        """Whether `tokenizer.model` is available to save beside `tokenizer.json`."""
        return bool(self.vocab_file) and os.path.isfile(self.vocab_file)

    def _sentencepiece_ids(self, texts: Sequence[str]) -> list[list[int]]:
        # Ids only: `encode_batch_fast` skips the byte-to-character offset mapping nobody reads here.
        return [
            encoding.ids for encoding in self._text_backend.encode_batch_fast(list(texts), add_special_tokens=False)
        ]

    def _piece_id(self, piece: str) -> int | None:
        return self._text_backend.token_to_id(piece)

    # The base class takes `list[str] | list[AddedToken]`, TokenizersBackend `list[str | AddedToken]`: this takes all.
    def _add_tokens(
        self, new_tokens: list[str | AddedToken] | list[str] | list[AddedToken], special_tokens: bool = False
    ) -> int:
        # Stored under their own text: `tokenizers` would store (and decode) a normalized token as "▁<token>".
        # Where text matches them is `_text_ids`'s business (as SentencePiece matches user-defined pieces).
        return super()._add_tokens([_unnormalized(token, special_tokens) for token in new_tokens], special_tokens)

    def update_post_processor(self) -> None:
        """Rebuild the BOS/EOS template after changing `bos_token`, `eos_token`, `add_bos_token` or `add_eos_token`."""
        super().update_post_processor()
        if "_text_backend" in self.__dict__:
            self._text_backend.post_processor = self.backend_tokenizer.post_processor

    def _plain_batch(self, text: Any, text_pair: Any, kwargs: dict[str, Any]) -> BatchEncoding | None:
        # Plain strings are encoded by the private backend, which has no added-token vocabulary to scan and is never
        # reconfigured: transformers' own path sets padding and truncation on the shared backend for each call, which
        # races when threads ask for different settings. Pairs, words and overflow go through transformers.
        offsets = bool(kwargs.get("return_offsets_mapping"))
        kwargs = {key: value for key, value in kwargs.items() if key != "return_offsets_mapping"}
        texts = plain_texts(text, text_pair, kwargs)
        if texts is None:
            return None
        pattern = self._whole_piece_pattern()
        if pattern is not None and any(pattern.search(item) for item in texts):
            if offsets:
                raise ValueError(
                    "return_offsets_mapping is not available for text holding added tokens or user-defined pieces "
                    "(their ids are assembled around those pieces, which no tokenizers encoding reproduces)"
                )
            # Ids assembled around whole pieces (added tokens): no `tokenizers` encoding has them, so no `Encoding`s.
            return self._batch_from_plain_texts(text, texts, kwargs)
        padding, truncation = kwargs.get("padding_strategy"), kwargs.get("truncation_strategy")
        padded = getattr(padding, "value", padding) not in (None, "do_not_pad")
        truncating = getattr(truncation, "value", truncation) not in (None, "do_not_truncate", False)
        if padded or truncating or kwargs.get("return_token_type_ids"):
            encoded = self._shaped_plain_batch(text, texts, truncating, kwargs)
        else:
            encoded = self._unshaped_plain_batch(text, texts, offsets, kwargs)
        if offsets:
            encodings = encoded.encodings
            assert encodings is not None  # both plain paths above build `Encoding`s (or `LazyEncodings`)
            mapping = [encoding.offsets for encoding in encodings]
            single = isinstance(text, str) and kwargs.get("return_tensors") is None
            as_returned = BatchEncoding({"offset_mapping": mapping}, tensor_type=kwargs.get("return_tensors"))
            encoded["offset_mapping"] = mapping[0] if single else as_returned["offset_mapping"]
        return encoded

    def _unshaped_plain_batch(
        self, text: Any, texts: list[str], offsets: bool, kwargs: dict[str, Any]
    ) -> BatchEncoding:
        """The common case: ids from `encode_batch_fast` and an all-ones attention mask; the `Encoding`s with
        character offsets that `BatchEncoding`'s alignment methods read are computed only if one of them is used
        (unless offsets are asked for: then one `encode_batch` gives both)."""
        add_special_tokens = kwargs.get("add_special_tokens", True)
        encode = self._text_backend.encode_batch if offsets else self._text_backend.encode_batch_fast
        computed = encode(texts, add_special_tokens=add_special_tokens)
        data: dict[str, list] = {"input_ids": [encoding.ids for encoding in computed]}
        if kwargs.get("return_attention_mask") is not False:
            data["attention_mask"] = [[1] * len(ids) for ids in data["input_ids"]]
        if kwargs.get("return_special_tokens_mask"):
            data["special_tokens_mask"] = [encoding.special_tokens_mask for encoding in computed]
        if kwargs.get("return_length"):
            data["length"] = [len(ids) for ids in data["input_ids"]]
        for ids in data["input_ids"]:
            self._eventual_warn_about_too_long_sequence(ids, kwargs.get("max_length"), kwargs.get("verbose", True))
        encodings = computed if offsets else LazyEncodings(self._text_backend, texts, add_special_tokens)
        tensors = kwargs.get("return_tensors")
        if isinstance(text, str) and tensors is None:
            return BatchEncoding({key: value[0] for key, value in data.items()}, encodings, n_sequences=1)
        return BatchEncoding(data, encodings, tensor_type=tensors, n_sequences=1)

    def _shaped_plain_batch(
        self, text: Any, texts: list[str], truncating: bool, kwargs: dict[str, Any]
    ) -> BatchEncoding:
        """Padded or truncated plain text: the ids as the slow tokenizer builds them, `Encoding`s shaped to match."""
        encoded = self._batch_from_plain_texts(text, texts, kwargs)
        add_special_tokens = kwargs.get("add_special_tokens", True)
        rows = [encoded["input_ids"]] if isinstance(text, str) and kwargs.get("return_tensors") is None else None
        max_length = kwargs.get("max_length")
        encoded._encodings = LazyEncodings(
            self._text_backend,
            texts,
            add_special_tokens,
            max_content=self._content_budget(max_length, add_special_tokens) if truncating and max_length else None,
            truncation_side=self.truncation_side,
            padded_lengths=[len(row) for row in (rows or encoded["input_ids"])],
            padding_side=kwargs.get("padding_side") or self.padding_side,
            pad_id=self.pad_token_id if self.pad_token_id is not None else 0,
            pad_token=self.pad_token or "<unk>",
        )
        encoded._n_sequences = 1
        return encoded

    # TokenizersBackend annotates the result as `tuple[str]` (one file); the base class, and this `()`, use `tuple[str, ...]`.
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:  # type: ignore[override]
        """Copy `tokenizer.model` into `save_directory` (when this tokenizer was built from one)."""
        if not self.can_save_slow_tokenizer:
            return ()
        out = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "tokenizer.model")
        if os.path.abspath(self.vocab_file) != os.path.abspath(out):
            copyfile(self.vocab_file, out)
        return (out,)

    def _save_pretrained(
        self, save_directory: str | os.PathLike, file_names: tuple[str, ...], *args: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        # transformers v5 writes only tokenizer.json for fast tokenizers; Code Llama users expect tokenizer.model too.
        files = super()._save_pretrained(save_directory, file_names, *args, **kwargs)
        return files + self.save_vocabulary(str(save_directory), kwargs.get("filename_prefix"))


def _unnormalized(token: str | AddedToken, special: bool) -> AddedToken:
    if isinstance(token, str):
        return AddedToken(token, special=special, normalized=False)
    return AddedToken(
        token.content,
        single_word=token.single_word,
        lstrip=token.lstrip,
        rstrip=token.rstrip,
        special=token.special,
        normalized=False,
    )


def _load_backend(vocab_file: str | None, tokenizer_file: str | None) -> Tokenizer:
    if tokenizer_file and os.path.isfile(tokenizer_file):
        backend = Tokenizer.from_file(tokenizer_file)
        if is_exact_backend(backend):
            # Files written by earlier versions stored added tokens normalized: reload them under their own text.
            state = json.loads(backend.to_str())
            if any(token["normalized"] for token in state["added_tokens"]):
                for token in state["added_tokens"]:
                    token["normalized"] = False
                backend = Tokenizer.from_str(json.dumps(state))
            return backend
        if not (vocab_file and os.path.isfile(vocab_file)):
            raise ValueError(
                f"{tokenizer_file} does not encode as SentencePiece does (it was not written by this package) and "
                "there is no tokenizer.model beside it to convert exactly"
            )
    if not vocab_file or not os.path.isfile(vocab_file):
        raise ValueError(
            f"CodeLlamaTokenizerFast needs tokenizer.model or tokenizer.json; {vocab_file!r} does not exist"
        )
    with open(vocab_file, "rb") as handle:
        return backend_from_sentencepiece(handle.read(), source=vocab_file)


__all__ = ["CodeLlamaTokenizerFast"]
