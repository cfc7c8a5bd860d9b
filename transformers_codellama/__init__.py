"""Code Llama for Hugging Face transformers: exact tokenizers, Auto-class registration, pipelines, conversion.

Importing this package registers Code Llama's config, model and tokenizers with the transformers Auto classes.
"""

from .configuration_code_llama import CodeLlamaConfig
from .fim import fim_example
from .modeling_code_llama import CodeLlamaForCausalLM, CodeLlamaModel
from .pipelines import CodeLlamaTextGenerationPipeline
from .registration import register
from .remote_code import save_remote_code
from .tiny_tokenizer import TINY_MODEL_PATH
from .tokenization_code_llama import CodeLlamaTokenizer
from .tokenization_code_llama_fast import CodeLlamaTokenizerFast

__version__ = "0.1.0"

register()

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
