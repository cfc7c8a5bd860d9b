"""The tests' reference for the converter's weights: every tensor through torch, written whole.

`torch.load` reads the shards (not the converter's `pth_reader`), `torch.cat` merges them, `permute_rotary` reorders
wq/wk and `.to` casts, where the converter copies bytes in a computed order (`conversion/weights.py`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from transformers_codellama.conversion.mapping import hf_name, permute_rotary, rotary_heads
from transformers_codellama.conversion.meta_checkpoint import MetaCheckpoint
from transformers_codellama.conversion.writer import ShardWriter, TensorSpec


def write_reference_weights(
    checkpoint: MetaCheckpoint, directory: Path, *, dtype: torch.dtype, max_shard_size: int
) -> None:
    """Write `checkpoint`'s Hugging Face weights in `dtype` into the new directory `directory`."""
    directory.mkdir()
    names = {name: str(hf_name(name)) for name in checkpoint.shapes}
    specs = [TensorSpec(names[name], shape, dtype) for name, shape in checkpoint.shapes.items()]
    writer = ShardWriter(directory, specs, max_shard_size=max_shard_size)
    for group in checkpoint.groups():
        for name, tensor in checkpoint.read(group):
            heads = rotary_heads(name, checkpoint.params)
            writer.write(names[name], [(tensor if heads is None else permute_rotary(tensor, heads)).to(dtype)])
    writer.finish()
