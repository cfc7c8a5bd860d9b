"""Configuration for Code Llama checkpoints: Llama's architecture with Code Llama's defaults and identity."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import LlamaConfig

from .releases import VARIANTS


@strict
class CodeLlamaConfig(LlamaConfig):
    r"""
    Configuration of a Code Llama model.

    The architecture is Llama's, so every [`~transformers.LlamaConfig`] argument is accepted; only the defaults
    differ (they are Code Llama 7B's: vocabulary 32016, RoPE base 1e6, a 16384-token context, RMSNorm epsilon
    1e-5). Two fields record what the checkpoint is:

    Attributes:
        variant (`str`, *optional*, defaults to `"base"`):
            Which Code Llama family the weights come from: `"base"`, `"python"` or `"instruct"`.
        supports_infilling (`bool`, *optional*, defaults to `True`):
            Whether the model was trained for fill-in-the-middle (7B/13B base and Instruct, all 70B models). The
            34B and Python models were not; pipelines refuse to infill with them.

    Example:

    ```python
    >>> from transformers_codellama import CodeLlamaConfig
    >>> config = CodeLlamaConfig(variant="python", supports_infilling=False, vocab_size=32000)
    >>> config.rope_parameters["rope_theta"]
    1000000.0
    ```
    """

    model_type = "codellama"

    vocab_size: int = 32016
    max_position_embeddings: int = 16384
    rms_norm_eps: float = 1e-5
    variant: str = "base"
    supports_infilling: bool = True

    def __post_init__(self, **kwargs):
        # Code Llama was trained with a RoPE base of 1e6 (Llama 2 used 1e4); Meta's params.json carries it.
        if self.rope_parameters is None:
            rope_theta = kwargs.pop("rope_theta", 1e6)
            self.rope_parameters = {"rope_type": "default", "rope_theta": float(rope_theta)}
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Validate Code Llama's own fields, then Llama's, naming the field and the value on failure."""
        super().validate_architecture()
        if self.variant not in VARIANTS:
            raise ValueError(f"CodeLlamaConfig.variant must be one of {', '.join(VARIANTS)}; got {self.variant!r}")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                "CodeLlamaConfig.num_attention_heads must be a multiple of num_key_value_heads; got "
                f"num_attention_heads={self.num_attention_heads}, num_key_value_heads={self.num_key_value_heads}"
            )


# The Auto classes a saved Code Llama checkpoint names in its `auto_map` (module.Class, relative to the checkpoint).
MODEL_AUTO_MAP = {
    "AutoConfig": "configuration_code_llama.CodeLlamaConfig",
    "AutoModel": "modeling_code_llama.CodeLlamaModel",
    "AutoModelForCausalLM": "modeling_code_llama.CodeLlamaForCausalLM",
}


__all__ = ["MODEL_AUTO_MAP", "VARIANTS", "CodeLlamaConfig"]
