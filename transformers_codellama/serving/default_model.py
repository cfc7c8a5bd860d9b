"""What `codellama-serve` serves with no `MODEL` argument: the package's small trained Code Llama.

It ships with the package (`data/tiny_codellama.*`, 1.86M parameters trained on part of Python's standard library),
so the playground, curl and an editor work one command after install, with no download. It is loaded the way the
demo loads it: written as a Meta checkpoint, converted by the real converter, then loaded by the Auto classes.
It writes Python-shaped code, not good code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

DEFAULT_MODEL_NAME = "codellama-tiny"
DEFAULT_MODEL_NOTE = "the package's small trained model: Python-shaped code, not good code; pass MODEL to serve yours"


def load_default_model(dtype: Any = "auto") -> tuple[Any, Any]:
    """The package's small trained model and its tokenizer, ready to serve (eval mode; `dtype` as for `from_pretrained`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import transformers_codellama  # noqa: F401  (registers Code Llama with the Auto classes)

    from ..conversion.convert import convert
    from ..tiny_checkpoint import CONTEXT, write_meta_checkpoint

    with tempfile.TemporaryDirectory(prefix="codellama-tiny-") as work:
        meta = write_meta_checkpoint(Path(work) / "CodeLlama-tiny")
        checkpoint = Path(work) / "converted"
        convert(input_dir=meta, output_dir=checkpoint, variant="base", context_length=CONTEXT)
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype).eval()
    return model, tokenizer


__all__ = ["DEFAULT_MODEL_NAME", "DEFAULT_MODEL_NOTE", "load_default_model"]
