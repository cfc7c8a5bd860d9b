"""The tokenizer files of a `--format llama` checkpoint, for engines that load it with stock `AutoTokenizer`.

vLLM, TGI and SGLang load tokenizers through stock transformers, without this package and usually without remote
code. A `tokenizer_config.json` naming `CodeLlamaTokenizer` would give them transformers' own Code Llama tokenizer
(ids that differ from SentencePiece on text starting with a space, and a 32017th token), and one naming
`LlamaTokenizer` rebuilds the pipeline from `tokenizer.model` in its own way. `PreTrainedTokenizerFast` uses
`tokenizer.json` as it is, and it exists under that name in every transformers release those engines pin (4.x and
5.x); TGI's router reads the same `tokenizer.json` with the `tokenizers` library. This package's `tokenizer.json`
encodes exactly as SentencePiece does, so the ids, `len()` and the infilling template's ids are Meta's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# The class stock AutoTokenizer resolves by name in transformers 4.x and 5.x, using tokenizer.json unchanged.
STOCK_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def stock_tokenizer_config(tokenizer: Any, *, context_length: int, chat_template: str | None) -> dict[str, Any]:
    """`tokenizer_config.json` for stock transformers: only keys every release understands.

    `<s>` and `</s>` in text are control tokens here (stock tokenizers match special tokens in text), which chat
    templates rely on: the engine renders the template to text, then tokenizes it.
    """
    config: dict[str, Any] = {
        "tokenizer_class": STOCK_TOKENIZER_CLASS,
        "bos_token": tokenizer.bos_token,
        "eos_token": tokenizer.eos_token,
        "unk_token": tokenizer.unk_token,
        "pad_token": None,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": context_length,
    }
    if chat_template is not None:
        config["chat_template"] = chat_template  # the key 4.x and 5.x both read
    return config


def save_stock_tokenizer(tokenizer: Any, directory: Path, *, tokenizer_model: Path, context_length: int) -> list[Path]:
    """Write `tokenizer.json` (the exact backend), `tokenizer.model` (for llama.cpp's converter) and a stock
    `tokenizer_config.json` into `directory`; no code files and no `auto_map`. Returns the files written."""
    files = [directory / "tokenizer.json", directory / "tokenizer.model", directory / "tokenizer_config.json"]
    tokenizer.backend_tokenizer.save(str(files[0]))
    shutil.copyfile(tokenizer_model, files[1])
    config = stock_tokenizer_config(tokenizer, context_length=context_length, chat_template=tokenizer.chat_template)
    files[2].write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return files


__all__ = ["STOCK_TOKENIZER_CLASS", "save_stock_tokenizer", "stock_tokenizer_config"]
