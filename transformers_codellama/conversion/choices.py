"""The converter's choices as plain data: output formats and dtype names.

This module imports nothing, so the command line builds its parser (and prints `--help`) without torch.
"""

from __future__ import annotations

# codellama: the plugin's CodeLlamaConfig plus code files for trust_remote_code; llama: a stock Llama checkpoint.
FORMATS = ("codellama", "llama")
# The dtypes the weights can be written in, by their torch names.
DTYPE_NAMES = ("bfloat16", "float16", "float32")

__all__ = ["DTYPE_NAMES", "FORMATS"]
