"""The checks made before a conversion reads a tensor, and what they produce: one `ConversionJob`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from ..releases import CUSTOM_SIZE
from .choices import DTYPE_NAMES, FORMATS
from .errors import ConversionError
from .mapping import SHARDS_PER_SIZE, infer_variant
from .meta_checkpoint import MetaCheckpoint
from .result import API_COMMAND, ConversionResult
from .writer import ShardWriter, check_output_dir, parse_size

if TYPE_CHECKING:
    import torch
    from typing_extensions import Unpack


class RequiredInputs(TypedDict):
    """The two inputs every conversion names (see `ConversionInputs`)."""

    input_dir: str | Path
    output_dir: str | Path


class ConversionInputs(RequiredInputs, total=False):
    """The keywords of `convert.convert` and `check_inputs`, written once. Only the first two are required.

    Attributes:
        input_dir: Meta's checkpoint directory: `params.json`, `consolidated.NN.pth`, `tokenizer.model`.
        output_dir: Where the Hugging Face checkpoint appears once complete; it must not exist, or be empty.
        model_size: The size the caller expects ("7B", ...); a checkpoint of another size is refused. Default: the
            size `params.json` describes.
        variant: "base", "python" or "instruct". Default: from the directory's name.
        dtype: Of the written weights, a name or a torch dtype. Default: as the shards store them.
        max_shard_size: The largest weight file, as "5GB" or bytes. Default: "5GB".
        output_format: "codellama" (the plugin's classes; the default) or "llama" (stock transformers, vLLM, TGI).
        force: Replace a non-empty `output_dir`. Default: False.
        command: What the model card quotes as the command that made it. Default: the API call.
        context_length: The context the checkpoint declares (`max_position_embeddings`, the tokenizer's
            `model_max_length`, the model card). Meta's `params.json` does not record it, so the default is Meta's
            release context for the size and variant; a model trained at another context says so here.
    """

    model_size: str | None
    variant: str | None
    dtype: str | torch.dtype | None
    max_shard_size: str | int
    output_format: str
    force: bool
    command: str | None
    context_length: int | None


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


def check_inputs(**inputs: Unpack[ConversionInputs]) -> ConversionJob:
    """Everything that can be refused before a tensor is read: the format, the output location, the checkpoint
    itself, the size and variant the caller expects, a positive context, the shard size and the dtype (a name or a
    torch dtype). Returns the job, with the opened checkpoint; `ConversionInputs` documents the keywords."""
    started = time.perf_counter()
    _check_keywords(inputs.keys())
    input_dir, output_dir = Path(inputs["input_dir"]), Path(inputs["output_dir"])
    output_format = inputs.get("output_format", "codellama")
    context_length, force = inputs.get("context_length"), inputs.get("force", False)
    model_size, dtype = inputs.get("model_size"), inputs.get("dtype")
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
    variant = inputs.get("variant") or infer_variant(input_dir.resolve().name)
    if variant is None:
        raise ConversionError(f"{input_dir}: the directory name names both Python and Instruct; pass --variant")
    return ConversionJob(
        checkpoint=checkpoint,
        output_dir=output_dir,
        variant=variant,
        output_format=output_format,
        dtype=checkpoint.dtype_name if dtype is None else _dtype_name(dtype),
        max_shard_size=parse_size(inputs.get("max_shard_size", "5GB")),
        force=force,
        command=inputs.get("command") or API_COMMAND,
        context_length=context_length,
        started=started,
    )


def _check_keywords(given: Iterable[str]) -> None:
    """The TypeError a misspelt or missing keyword would raise against a written-out signature."""
    given = set(given)
    known = ConversionInputs.__required_keys__ | ConversionInputs.__optional_keys__
    if unknown := sorted(given - known):
        raise TypeError(f"convert() got unexpected keyword arguments: {', '.join(unknown)}")
    if missing := sorted(ConversionInputs.__required_keys__ - given):
        raise TypeError(f"convert() is missing required keyword arguments: {', '.join(missing)}")


def _dtype_name(dtype: object) -> str:
    """`dtype` ("float16" or torch.float16) as one of DTYPE_NAMES, without importing torch."""
    name = dtype if isinstance(dtype, str) else None
    if type(dtype).__module__ == "torch" and type(dtype).__name__ == "dtype":
        name = str(dtype).removeprefix("torch.")
    if name is None or name not in DTYPE_NAMES:
        raise ConversionError(f"dtype must be one of {', '.join(DTYPE_NAMES)}; found {dtype!r}")
    return name


__all__ = ["ConversionInputs", "ConversionJob", "RequiredInputs", "check_inputs"]
