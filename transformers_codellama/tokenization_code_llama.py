"""`CodeLlamaTokenizer`: Meta's Code Llama tokenizer on SentencePiece itself, as a transformers `PreTrainedTokenizer`."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from shutil import copyfile
from typing import Any

import sentencepiece as spm
from transformers import BatchEncoding, PreTrainedTokenizer

# Remote code (`trust_remote_code=True`) on transformers 5.5 copies only the *direct* relative imports of this file
# into the module cache, so the modules the mixin imports are named here too (`from .x import` form: the copier reads
# these lines).
from .chat import KNOWN_TEMPLATES as _KNOWN_TEMPLATES  # noqa: F401
from .infilling import FILL_TOKEN as _FILL_TOKEN  # noqa: F401
from .sentencepiece_backend import backend_from_sentencepiece, bos_eos_template, is_byte_piece
from .stopping import MODES as _MODES  # noqa: F401
from .tokenization_code_llama_mixin import CodeLlamaTokenizerMixin, base_init_kwargs, plain_texts
from .whole_pieces import whole_piece_pattern as _whole_piece_pattern  # noqa: F401

VOCAB_FILES_NAMES = {"vocab_file": "tokenizer.model"}


class CodeLlamaTokenizer(CodeLlamaTokenizerMixin, PreTrainedTokenizer):
    r"""
    Code Llama's tokenizer, running Meta's SentencePiece model (`tokenizer.model`) through `sentencepiece`.

    Plain text encodes exactly as `SentencePieceProcessor.encode` (with BOS in front by default); text is always
    text, so `"<s>"` in source code is encoded as the characters it is, never as the BOS id. A prompt holding one
    `fill_token` (`"<FILL_ME>"`), or a prompt with `suffix=...`, is encoded in Meta's infilling layout.

    Args:
        vocab_file (`str`): Path to the SentencePiece model (`tokenizer.model`).
        unk_token (`str`, *optional*, defaults to `"<unk>"`): The unknown piece (never produced: byte fallback).
        bos_token (`str`, *optional*, defaults to `"<s>"`): Beginning of sequence, id 1.
        eos_token (`str`, *optional*, defaults to `"</s>"`): End of sequence, id 2.
        pad_token (`str`, *optional*): None: Code Llama has no pad token; set one (e.g. the EOS token) to pad.
        sp_model_kwargs (`dict`, *optional*): Passed to `sentencepiece.SentencePieceProcessor`.
        add_bos_token (`bool`, *optional*, defaults to `True`): Whether plain encodes start with BOS.
        add_eos_token (`bool`, *optional*, defaults to `False`): Whether plain encodes end with EOS.
        clean_up_tokenization_spaces (`bool`, *optional*, defaults to `False`): Keep it off for code.

    Other Parameters:
        prefix_token (`str`, *optional*, defaults to `"▁<PRE>"`): The infilling prefix piece, looked up by name.
        middle_token (`str`, *optional*, defaults to `"▁<MID>"`): The infilling middle piece.
        suffix_token (`str`, *optional*, defaults to `"▁<SUF>"`): The infilling suffix piece.
        eot_token (`str`, *optional*, defaults to `"▁<EOT>"`): The piece that ends a generated middle.
        fill_token (`str`, *optional*, defaults to `"<FILL_ME>"`):
            The marker splitting an infilling prompt into prefix and suffix. It is not a token: `len(tokenizer)` is
            the SentencePiece vocabulary size.
        suffix_first (`bool`, *optional*, defaults to `False`):
            Use the suffix-prefix-middle layout; can be overridden per call with `suffix_first=`.

    Example:

    ```python
    >>> from transformers_codellama import TINY_MODEL_PATH, CodeLlamaTokenizer
    >>> tokenizer = CodeLlamaTokenizer(vocab_file=str(TINY_MODEL_PATH))
    >>> ids = tokenizer("def add(a, b):\n    <FILL_ME>\n")["input_ids"]
    >>> ids[:2] == [tokenizer.bos_token_id, tokenizer.prefix_id], ids[-1] == tokenizer.middle_id
    (True, True)
    ```
    """

    vocab_files_names = VOCAB_FILES_NAMES

    def __init__(
        self,
        vocab_file: str,
        unk_token: str = "<unk>",
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        pad_token: str | None = None,
        sp_model_kwargs: dict[str, Any] | None = None,
        add_bos_token: bool | None = None,
        add_eos_token: bool | None = None,
        clean_up_tokenization_spaces: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vocab_file = vocab_file
        self.sp_model_kwargs = sp_model_kwargs or {}
        self.sp_model = _load_sentencepiece(vocab_file, self.sp_model_kwargs)
        self._vocab = {self.sp_model.id_to_piece(i): i for i in range(self.sp_model.get_piece_size())}
        saved_post_processor = _saved_post_processor(kwargs.pop("tokenizer_file", None))
        code_llama_kwargs, base_kwargs = base_init_kwargs(
            kwargs,
            self._vocab,
            saved_post_processor=saved_post_processor,
            add_bos_token=add_bos_token,
            add_eos_token=add_eos_token,
        )
        self.add_bos_token, self.add_eos_token = base_kwargs["add_bos_token"], base_kwargs["add_eos_token"]
        super().__init__(
            unk_token=unk_token,
            bos_token=bos_token,
            eos_token=eos_token,
            pad_token=pad_token,
            sp_model_kwargs=self.sp_model_kwargs,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **base_kwargs,
        )
        self._init_code_llama(code_llama_kwargs)

    # SentencePieceProcessor cannot be pickled; ship the serialized model instead (multiprocessing, datasets.map).
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["sp_model"] = self.sp_model.serialized_model_proto()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.sp_model = spm.SentencePieceProcessor(**self.sp_model_kwargs)
        self.sp_model.LoadFromSerializedProto(state["sp_model"])

    @property
    def vocab_size(self) -> int:
        """Size of the SentencePiece vocabulary (32016 for Code Llama, 32000 for 34B and the Python models)."""
        return self.sp_model.get_piece_size()

    def get_vocab(self) -> dict[str, int]:
        """Piece to id, for every SentencePiece piece and any token added on top."""
        return {**self._vocab, **self._added_tokens_encoder}

    def _sentencepiece_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp_model.encode(list(texts))

    def _piece_id(self, piece: str) -> int | None:
        return self._vocab.get(piece)

    def _plain_batch(self, text: Any, text_pair: Any, kwargs: dict[str, Any]) -> BatchEncoding | None:
        # One batched SentencePiece call instead of pieces -> ids in Python.
        texts = plain_texts(text, text_pair, kwargs)
        if texts is None:
            return None
        return self._batch_from_plain_texts(text, texts, kwargs)

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return self.sp_model.encode(text, out_type=str)

    def _convert_token_to_id(self, token: str) -> int:
        return self.sp_model.piece_to_id(token)

    def _convert_id_to_token(self, index: int) -> str:
        return self.sp_model.id_to_piece(index)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join pieces as the fast tokenizer's decoder does: `▁` → space, byte pieces fused, first space dropped."""
        parts: list[str] = []
        pending = bytearray()
        for token in tokens:
            if is_byte_piece(token):
                pending.append(int(token[3:5], 16))
                continue
            if pending:
                parts.append(_decode_bytes(pending))
                pending = bytearray()
            parts.append(token.replace("▁", " "))
        if pending:
            parts.append(_decode_bytes(pending))
        text = "".join(parts)
        return text[1:] if text.startswith(" ") else text

    def _save_pretrained(
        self, save_directory: str | os.PathLike, file_names: tuple[str, ...], *args: Any, **kwargs: Any
    ) -> tuple[str, ...]:
        # Write tokenizer.json too, so that a folder saved by either class has the same three files.
        files = super()._save_pretrained(save_directory, file_names, *args, **kwargs)
        backend = backend_from_sentencepiece(self.sp_model.serialized_model_proto(), source=self.vocab_file)
        backend.post_processor = bos_eos_template(
            (self.bos_token, self.bos_token_id),
            (self.eos_token, self.eos_token_id),
            add_bos=self.add_bos_token,
            add_eos=self.add_eos_token,
        )
        prefix = kwargs.get("filename_prefix") or (args[1] if len(args) > 1 else None)
        path = os.path.join(save_directory, (prefix + "-" if prefix else "") + "tokenizer.json")
        backend.save(path)
        return (*files, path)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write the SentencePiece model as `tokenizer.model` into `save_directory`."""
        if not os.path.isdir(save_directory):
            raise ValueError(f"save_vocabulary: {save_directory} is not a directory")
        out = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "tokenizer.model")
        if os.path.abspath(self.vocab_file) != os.path.abspath(out) and os.path.isfile(self.vocab_file):
            copyfile(self.vocab_file, out)
        elif not os.path.isfile(out):
            with open(out, "wb") as handle:
                handle.write(self.sp_model.serialized_model_proto())
        return (out,)


def _decode_bytes(data: bytearray) -> str:
    # As `tokenizers`' ByteFallback decoder: a run of byte pieces that is not valid UTF-8 becomes one U+FFFD per byte.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "\ufffd" * len(data)


def _saved_post_processor(tokenizer_file: str | None) -> dict[str, Any] | None:
    if not tokenizer_file or not os.path.isfile(tokenizer_file):
        return None
    with open(tokenizer_file, encoding="utf-8") as handle:
        return json.load(handle).get("post_processor")


def _load_sentencepiece(vocab_file: str, sp_model_kwargs: dict[str, Any]) -> spm.SentencePieceProcessor:
    if not vocab_file or not os.path.isfile(vocab_file):
        raise ValueError(f"CodeLlamaTokenizer needs a SentencePiece model file; {vocab_file!r} does not exist")
    processor = spm.SentencePieceProcessor(**sp_model_kwargs)
    try:
        processor.Load(vocab_file)
    except (OSError, RuntimeError) as error:
        raise ValueError(f"{vocab_file} is not a SentencePiece model: {str(error).splitlines()[0]}") from None
    return processor


__all__ = ["CodeLlamaTokenizer"]
