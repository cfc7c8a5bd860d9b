"""The checks made before a conversion reads a tensor: format, output location, the checkpoint, size and variant."""

from __future__ import annotations

from pathlib import Path

from ..releases import CUSTOM_SIZE
from .choices import FORMATS
from .errors import ConversionError
from .mapping import SHARDS_PER_SIZE, infer_variant
from .meta_checkpoint import MetaCheckpoint
from .writer import check_output_dir


def check_inputs(
    input_dir: Path,
    output_dir: Path,
    *,
    model_size: str | None,
    variant: str | None,
    output_format: str,
    force: bool,
    context_length: int | None = None,
) -> tuple[MetaCheckpoint, str]:
    """Everything that can be refused before a tensor is read: the format, the output location, the checkpoint
    itself, the size and variant the caller expects, a positive context. Returns the opened checkpoint and its variant."""
    if output_format not in FORMATS:
        raise ConversionError(f"format must be one of {', '.join(FORMATS)}; found {output_format!r}")
    if context_length is not None and context_length < 1:
        raise ConversionError(f"context length must be a positive number of tokens; found {context_length}")
    check_output_dir(output_dir, force=force)  # before reading anything, so a refusal is immediate
    if output_dir.resolve() == input_dir.resolve() or output_dir.resolve() in input_dir.resolve().parents:
        raise ConversionError(f"{output_dir}: output directory must not be or contain the input directory")
    checkpoint = MetaCheckpoint.open(input_dir)
    size = checkpoint.model_size
    if model_size is not None and model_size.upper() != size:
        p = checkpoint.params
        raise ConversionError(
            f"{input_dir / 'params.json'}: --model-size {model_size} disagrees with dim={p.dim}, "
            f"n_layers={p.n_layers}, which is {size if size != CUSTOM_SIZE else 'no released size'}"
        )
    if size in SHARDS_PER_SIZE and len(checkpoint.shard_paths) != SHARDS_PER_SIZE[size]:
        raise ConversionError(
            f"{input_dir}: found {len(checkpoint.shard_paths)} consolidated.NN.pth shards; Meta's "
            f"{size} has {SHARDS_PER_SIZE[size]}"
        )
    variant = variant or infer_variant(input_dir.resolve().name)
    if variant is None:
        raise ConversionError(f"{input_dir}: the directory name names both Python and Instruct; pass --variant")
    return checkpoint, variant


__all__ = ["check_inputs"]
