"""Code Llama models: Llama's architecture, bound to `CodeLlamaConfig` so the Auto classes and the Hub know them.

Code Llama changes nothing in Llama's forward pass (its RoPE base and context length are configuration), so the
classes below only rebind the configuration class; Llama's weights layout, tensor-parallel plan and
`_no_split_modules` are inherited unchanged. What Code Llama does change is when generation stops: infilling ends
with `▁<EOT>` and the 70B Instruct chat with `<step>`, which `generation_config_for` records.

This module imports only its sibling configuration module (relatively), so `save_pretrained` can copy it beside
the weights and a machine without the plugin can load it with `trust_remote_code=True`.
"""

from __future__ import annotations

from typing import Any

from transformers import GenerationConfig, LlamaForCausalLM, LlamaModel

from .configuration_code_llama import CodeLlamaConfig
from .stopping import CHAT, COMPLETE, INFILL, stop_ids

# The Auto classes a saved Code Llama checkpoint names in its `auto_map` (module.Class, relative to the checkpoint).
MODEL_AUTO_MAP = {
    "AutoConfig": "configuration_code_llama.CodeLlamaConfig",
    "AutoModel": "modeling_code_llama.CodeLlamaModel",
    "AutoModelForCausalLM": "modeling_code_llama.CodeLlamaForCausalLM",
}


class CodeLlamaModel(LlamaModel):
    """The bare Code Llama decoder (Llama's), returning hidden states; what `AutoModel` builds for `codellama`."""

    # The Auto mapping keys on the configuration class, so the base model must name Code Llama's.
    config_class = CodeLlamaConfig


class CodeLlamaForCausalLM(LlamaForCausalLM):
    """Code Llama with its language-modelling head (Llama's); what `AutoModelForCausalLM` builds for `codellama`.

    Example:

    ```python
    >>> from transformers_codellama import CodeLlamaConfig, CodeLlamaForCausalLM
    >>> config = CodeLlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    ...                          num_attention_heads=4, num_key_value_heads=2)
    >>> model = CodeLlamaForCausalLM(config)
    >>> model.config.rope_parameters["rope_theta"]
    1000000.0
    ```
    """

    # The Auto mapping keys on the configuration class, so the task head must name Code Llama's.
    config_class = CodeLlamaConfig

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> None:
        """Save as Llama does; the checkpoint's `auto_map` also names the base model (for `AutoModel` remotely)."""
        # transformers writes only the saved class into `auto_map`; Code Llama checkpoints name every Auto class so
        # `AutoModel.from_pretrained(..., trust_remote_code=True)` works on them without the plugin too.
        if self._auto_class is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **MODEL_AUTO_MAP}
        super().save_pretrained(save_directory, *args, **kwargs)


def stop_token_ids(config: Any, tokenizer: Any) -> list[int]:
    """The ids on which plain `generate` stops for this checkpoint: those of every mode it can generate in.

    That is `</s>`, `▁<EOT>` where the checkpoint can infill, and `<step>` on 70B Instruct (see `stopping`).
    """
    modes = [COMPLETE, CHAT]
    if getattr(config, "supports_infilling", True) and getattr(tokenizer, "supports_infilling", False):
        modes.insert(1, INFILL)
    return list(dict.fromkeys(token for mode in modes for token in stop_ids(tokenizer, mode)))


def generation_config_for(config: Any, tokenizer: Any) -> GenerationConfig:
    """A `GenerationConfig` for a Code Llama checkpoint: Llama's, stopping on `stop_token_ids(config, tokenizer)`.

    The converter (and anyone building a checkpoint) assigns it to `model.generation_config` before saving, so
    `generation_config.json` makes `model.generate` stop where Meta's decoding does.
    """
    generation_config = GenerationConfig.from_model_config(config)
    stops = stop_token_ids(config, tokenizer)
    generation_config.bos_token_id = tokenizer.bos_token_id
    generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    return generation_config


__all__ = [
    "MODEL_AUTO_MAP",
    "CodeLlamaForCausalLM",
    "CodeLlamaModel",
    "generation_config_for",
    "stop_token_ids",
]
