"""Registration of Code Llama with the transformers Auto classes and the text-generation pipeline.

`register()` runs when `transformers_codellama` is imported. It only *adds* entries keyed on Code Llama's own
classes and names (`model_type="codellama"`, `CodeLlamaTokenizer`/`CodeLlamaTokenizerFast`), so every built-in
model, Llama included, resolves exactly as before. Running it twice is harmless.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from .configuration_code_llama import CodeLlamaConfig
from .modeling_code_llama import CodeLlamaForCausalLM, CodeLlamaModel
from .pipelines import register_pipeline
from .tokenization_code_llama import CodeLlamaTokenizer
from .tokenization_code_llama_fast import CodeLlamaTokenizerFast


def register() -> None:
    """Register Code Llama's config, models, tokenizers and pipeline with transformers (idempotent).

    Raises:
        RuntimeError: the installed transformers already defines the `codellama` model type.
    """
    model_type = CodeLlamaConfig.model_type
    if model_type in CONFIG_MAPPING_NAMES:
        raise RuntimeError(
            f"transformers {__import__('transformers').__version__} already defines model_type {model_type!r}; "
            "transformers-codellama would shadow it"
        )
    # exist_ok: a second call re-registers the same classes (the built-in check above guards the name).
    AutoConfig.register(model_type, CodeLlamaConfig, exist_ok=True)
    AutoModel.register(CodeLlamaConfig, CodeLlamaModel, exist_ok=True)
    AutoModelForCausalLM.register(CodeLlamaConfig, CodeLlamaForCausalLM, exist_ok=True)
    # Both names are registered (slow -> fast alias), so a tokenizer_config.json naming either `CodeLlamaTokenizer`
    # or `CodeLlamaTokenizerFast` builds ours rather than transformers' built-in class of the same name.
    AutoTokenizer.register(
        CodeLlamaConfig,
        tokenizer_class=CodeLlamaTokenizerFast,
        slow_tokenizer_class=CodeLlamaTokenizer,
        fast_tokenizer_class=CodeLlamaTokenizerFast,
        exist_ok=True,
    )
    # Saved checkpoints carry their code and an `auto_map`, so they load without the plugin (trust_remote_code).
    CodeLlamaConfig.register_for_auto_class("AutoConfig")
    CodeLlamaModel.register_for_auto_class("AutoModel")
    CodeLlamaForCausalLM.register_for_auto_class("AutoModelForCausalLM")
    CodeLlamaTokenizer.register_for_auto_class("AutoTokenizer")
    CodeLlamaTokenizerFast.register_for_auto_class("AutoTokenizer")
    register_pipeline()


__all__ = ["register"]
