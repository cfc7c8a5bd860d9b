"""Code Llama models: Llama's architecture, bound to `CodeLlamaConfig` so the Auto classes and the Hub know them.

Code Llama changes nothing in Llama's forward pass (its RoPE base and context length are configuration), so the
classes below only rebind the configuration class; Llama's weights layout, tensor-parallel plan and
`_no_split_modules` are inherited unchanged. What Code Llama does change is when generation stops: infilling ends
with `▁<EOT>` and the 70B Instruct chat with `<step>`, which `stopping.generation_config_for` records.

Besides transformers' Llama classes, this module imports only its sibling `configuration_code_llama` (relatively,
and that one only `releases`), so `save_pretrained` can copy them beside the weights and a machine without the
plugin can load them with `trust_remote_code=True`.
"""

from __future__ import annotations

from typing import Any

from transformers import LlamaForCausalLM, LlamaModel

from .configuration_code_llama import MODEL_AUTO_MAP, CodeLlamaConfig


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


__all__ = [
    "CodeLlamaForCausalLM",
    "CodeLlamaModel",
]
