"""Code Llama for Hugging Face transformers: exact tokenizers, Auto-class registration, pipelines, conversion.

Importing this package registers Code Llama's config, model and tokenizers with the transformers Auto classes,
which imports torch and transformers' model code, unless the environment variable
`TRANSFORMERS_CODELLAMA_DEFER_REGISTRATION` (named by `DEFER_REGISTRATION_ENV`) is `1`: the one way to skip it. The public names below are imported
on first use (PEP 562), so with registration skipped the package imports nothing heavy. `codellama-convert` (the
script `conversion/codellama-convert`) sets the variable around its import of the converter, so that its arguments
parse without torch or transformers, and the converter sets it for its metadata child process; neither's output
depends on the registration. `python -m transformers_codellama.conversion.convert_codellama_weights_to_hf` imports
this package before the converter runs, so it registers (the same conversion, a slower start).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it, imported when the name is first used.
_EXPORTS = {
    "TINY_MODEL_PATH": ".tiny_tokenizer",
    "CodeLlamaConfig": ".configuration_code_llama",
    "CodeLlamaForCausalLM": ".modeling_code_llama",
    "CodeLlamaModel": ".modeling_code_llama",
    "CodeLlamaTextGenerationPipeline": ".pipelines",
    "CodeLlamaTokenizer": ".tokenization_code_llama",
    "CodeLlamaTokenizerFast": ".tokenization_code_llama_fast",
    "fim_example": ".training.fim",
    "register": ".registration",
    "save_remote_code": ".remote_code",
}

if TYPE_CHECKING:
    from .configuration_code_llama import CodeLlamaConfig
    from .modeling_code_llama import CodeLlamaForCausalLM, CodeLlamaModel
    from .pipelines import CodeLlamaTextGenerationPipeline
    from .registration import register
    from .remote_code import save_remote_code
    from .tiny_tokenizer import TINY_MODEL_PATH
    from .tokenization_code_llama import CodeLlamaTokenizer
    from .tokenization_code_llama_fast import CodeLlamaTokenizerFast
    from .training.fim import fim_example


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later uses are plain attribute lookups
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


# Set to "1", it skips the registration on import (see the docstring). `conversion/codellama-convert` spells the
# name too: it must set it before it imports anything of this package.
DEFER_REGISTRATION_ENV = "TRANSFORMERS_CODELLAMA_DEFER_REGISTRATION"


def _register_on_import() -> None:
    if os.environ.get(DEFER_REGISTRATION_ENV) == "1":
        return
    from .registration import register

    register()


_register_on_import()

__all__ = [
    "TINY_MODEL_PATH",
    "CodeLlamaConfig",
    "CodeLlamaForCausalLM",
    "CodeLlamaModel",
    "CodeLlamaTextGenerationPipeline",
    "CodeLlamaTokenizer",
    "CodeLlamaTokenizerFast",
    "__version__",
    "fim_example",
    "register",
    "save_remote_code",
]
