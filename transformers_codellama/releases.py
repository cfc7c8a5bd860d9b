"""What Meta released as Code Llama: the variants (model families) and the sizes, as plain data.

This module imports nothing, so the configuration (and the remote-code copy of a checkpoint) and the converter share
these facts without the converter importing transformers.
"""

from __future__ import annotations

VARIANTS = ("base", "python", "instruct")
# The released sizes and the number of model-parallel shards (`consolidated.NN.pth`) Meta ships for each.
SHARDS_PER_SIZE = {"7B": 1, "13B": 2, "34B": 4, "70B": 8}
# The size the converter reports for shapes Meta never released.
CUSTOM_SIZE = "custom"

__all__ = ["CUSTOM_SIZE", "SHARDS_PER_SIZE", "VARIANTS"]
