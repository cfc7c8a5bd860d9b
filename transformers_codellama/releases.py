"""What Meta released as Code Llama: the variants (model families) and the sizes, as plain data.

This module imports nothing, so the configuration (and the remote-code copy of a checkpoint) and the converter share
these facts without the converter importing transformers.
"""

from __future__ import annotations

VARIANTS = ("base", "python", "instruct")
# The size the converter reports for shapes Meta never released.
CUSTOM_SIZE = "custom"

__all__ = ["CUSTOM_SIZE", "VARIANTS"]
