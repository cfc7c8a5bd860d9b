"""BOS/EOS for both Code Llama tokenizers: where Meta's `encode(bos=True, eos=...)` puts them, and keeping the two
switches through a save (transformers v5 drops them from `tokenizer_config.json`)."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any


class CodeLlamaSpecialTokensMixin:
    """`build_inputs_with_special_tokens` and its companions, from `add_bos_token`/`add_eos_token`."""

    if TYPE_CHECKING:  # provided by transformers' tokenizer base classes
        bos_token_id: int
        eos_token_id: int
        add_bos_token: bool
        add_eos_token: bool
        all_special_ids: list[int]

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """Add BOS (and EOS, when `add_eos_token`) around each sequence, as Meta's `encode(bos=True)` does."""
        bos = [self.bos_token_id] if self.add_bos_token else []  # type: ignore[attr-defined]
        eos = [self.eos_token_id] if self.add_eos_token else []  # type: ignore[attr-defined]
        output = bos + list(token_ids_0) + eos
        if token_ids_1 is not None:
            output += bos + list(token_ids_1) + eos
        return output

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where `build_inputs_with_special_tokens` adds BOS/EOS (or, for built ids, where a special id is)."""
        if already_has_special_tokens:
            special = set(self.all_special_ids)  # type: ignore[attr-defined]
            return [1 if token in special else 0 for token in token_ids_0]
        bos = [1] if self.add_bos_token else []  # type: ignore[attr-defined]
        eos = [1] if self.add_eos_token else []  # type: ignore[attr-defined]
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
        files = super().save_pretrained(save_directory, *args, **kwargs)  # type: ignore[misc]
        prefix = kwargs.get("filename_prefix") or ""
        path = os.path.join(save_directory, (prefix + "-" if prefix else "") + "tokenizer_config.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                config = json.load(handle)
            config.update(add_bos_token=self.add_bos_token, add_eos_token=self.add_eos_token)  # type: ignore[attr-defined]
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return files
