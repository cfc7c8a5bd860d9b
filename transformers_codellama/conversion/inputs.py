"""The checks made before a conversion reads a tensor, and what they produce: one `ConversionJob`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..releases import CUSTOM_SIZE
from .choices import DTYPE_NAMES, FORMATS
from .errors import ConversionError
from .mapping import SHARDS_PER_SIZE, infer_variant
from .meta_checkpoint import MetaCheckpoint
from .result import API_COMMAND, ConversionResult
from .writer import ShardWriter, check_output_dir, parse_size

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ConversionJob:
    """A conversion whose inputs were all checked (`check_inputs`): what to read, what to write, and how."""

    checkpoint: MetaCheckpoint
    output_dir: Path
    variant: str
    output_format: str
    dtype: str  # of the written weights, as torch names it without "torch.": the stored one unless asked otherwise
    max_shard_size: int  # bytes
    force: bool
    command: str  # what the model card quotes
    context_length: int | None  # None: Meta's release context for the size and variant
    started: float  # `time.perf_counter()` when the checks began

    def metadata(self) -> dict[str, Any]:
        """What the files beside the weights depend on: the keywords of `convert.write_metadata`, JSON-ready."""
        return {
            "variant": self.variant,
            "output_format": self.output_format,
            "dtype": self.dtype,
            "command": self.command,
            "context_length": self.context_length,
        }

    def result(
        self,
        writer: ShardWriter,
        *,
        dtype: torch.dtype | str,
        peak_rss_bytes: int,
        max_logit_difference: float | None = None,
    ) -> ConversionResult:
        """What the conversion of this job reports once it is done: `writer` wrote its weights, `seconds` count from
        the checks (`started`)."""
        return ConversionResult(
            output_dir=self.output_dir,
            model_size=self.checkpoint.model_size,
            variant=self.variant,
            output_format=self.output_format,
            dtype=dtype,
            weight_files=writer.files,
            weight_bytes=writer.total_size,
            seconds=time.perf_counter() - self.started,
            peak_rss_bytes=peak_rss_bytes,
            max_logit_difference=max_logit_difference,
        )


def check_inputs(
    *,
    input_dir: str | Path,
    output_dir: str | Path,
    model_size: str | None = None,
    variant: str | None = None,
    dtype: Any = None,
    max_shard_size: str | int = "5GB",
    output_format: str = "codellama",
    force: bool = False,
    command: str | None = None,
    context_length: int | None = None,
) -> ConversionJob:
    """Everything that can be refused before a tensor is read: the format, the output location, the checkpoint
    itself, the size and variant the caller expects, a positive context, the shard size and the dtype (a name or a
    torch dtype). Returns the job, with the opened checkpoint; `convert.convert` documents the arguments."""
    started = time.perf_counter()
    input_dir, output_dir = Path(input_dir), Path(output_dir)
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
    return ConversionJob(
        checkpoint=checkpoint,
        output_dir=output_dir,
        variant=variant,
        output_format=output_format,
        dtype=checkpoint.dtype_name if dtype is None else _dtype_name(dtype),
        max_shard_size=parse_size(max_shard_size),
        force=force,
        command=command or API_COMMAND,
        context_length=context_length,
        started=started,
    )


def _dtype_name(dtype: object) -> str:
    """`dtype` ("float16" or torch.float16) as one of DTYPE_NAMES, without importing torch."""
    name = dtype if isinstance(dtype, str) else None
    if type(dtype).__module__ == "torch" and type(dtype).__name__ == "dtype":
        name = str(dtype).removeprefix("torch.")
    if name is None or name not in DTYPE_NAMES:
        raise ConversionError(f"dtype must be one of {', '.join(DTYPE_NAMES)}; found {dtype!r}")
    return name


__all__ = ["ConversionJob", "check_inputs"]
