"""Code Llama for Hugging Face transformers: exact tokenizers, Auto-class registration, pipelines, conversion.

Importing this package registers Code Llama's config, model and tokenizers with the transformers Auto classes.
The public names below are imported on first use (PEP 562), so that `codellama-convert` (the script
`conversion/codellama-convert`) can import the converter's argument parser without torch or transformers: it sets
`TRANSFORMERS_CODELLAMA_DEFER_REGISTRATION=1` for that import, and registration is skipped.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
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


# The converter's command-line module: `python -m` imports this package first, and the converter needs no
# registration (its output does not depend on it), so that start-up skips it as the script's does.
_CONVERTER_MODULE = "transformers_codellama.conversion.convert_codellama_weights_to_hf"


def _running_converter_module() -> bool:
    if sys.argv[:1] != ["-m"]:  # Python sets argv[0] to "-m" while it imports a `-m` module's packages
        return False
    argv = getattr(sys, "orig_argv", [])
    return f"-m{_CONVERTER_MODULE}" in argv or any(
        flag == "-m" and name == _CONVERTER_MODULE for flag, name in itertools.pairwise(argv)
    )


def _register_on_import() -> None:
    if os.environ.get("TRANSFORMERS_CODELLAMA_DEFER_REGISTRATION") == "1" or _running_converter_module():
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
