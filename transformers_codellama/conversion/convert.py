"""`convert()`: a Meta Code Llama checkpoint directory to a Hugging Face one, streamed tensor by tensor."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.utils import tqdm
from transformers import LlamaConfig

from .. import __version__
from ..chat import chat_template_for
from ..configuration_code_llama import CodeLlamaConfig
from ..remote_code import save_remote_code
from ..stopping import generation_config_for
from ..tokenization_code_llama_fast import CodeLlamaTokenizerFast
from .choices import DTYPE_NAMES, FORMATS
from .errors import ConversionError
from .inputs import check_inputs
from .mapping import (
    MetaParams,
    config_kwargs,
    hf_name,
    max_context,
    permute_rotary,
    rotary_heads,
    shard_axis,
)
from .meta_checkpoint import MetaCheckpoint
from .model_card import CardFacts, model_card, original_name
from .result import API_COMMAND, ConversionResult, peak_rss_bytes
from .stock_tokenizer import save_stock_tokenizer
from .writer import Block, FileSpan, ShardWriter, TensorSpec, parse_size, staged_output

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}


def load_tokenizer(tokenizer_model: Path) -> Any:
    """The plugin's fast tokenizer for `tokenizer_model`, as loaded (no context, no chat template yet)."""
    try:
        return CodeLlamaTokenizerFast(vocab_file=str(tokenizer_model))
    except (ValueError, RuntimeError, OSError) as error:
        raise ConversionError(f"{tokenizer_model}: cannot build the Code Llama tokenizer ({error})") from None


def build_tokenizer(tokenizer_model: Path, *, variant: str, context_length: int, loaded: Any = None) -> Any:
    """The plugin's fast tokenizer for `tokenizer_model`, with the chat template for Instruct models.

    `loaded`: what `load_tokenizer(tokenizer_model)` returned earlier, to finish instead of loading again.
    """
    tokenizer = loaded if loaded is not None else load_tokenizer(tokenizer_model)
    tokenizer.model_max_length = context_length
    if variant == "instruct":
        tokenizer.chat_template = chat_template_for(tokenizer)
    return tokenizer


def build_config(
    params: MetaParams,
    *,
    vocab_size: int,
    model_size: str,
    variant: str,
    output_format: str,
    supports_infilling: bool,
    dtype: torch.dtype,
    context_length: int | None = None,
) -> LlamaConfig:
    """The model config: the plugin's CodeLlamaConfig, or a stock LlamaConfig for `--format llama`.

    `context_length` (default: Meta's release context for the size and variant) sets `max_position_embeddings`.
    """
    context = context_length or max_context(model_size, variant)
    kwargs = config_kwargs(params, vocab_size=vocab_size, max_position_embeddings=context, dtype=dtype)
    if output_format == "llama":
        config = LlamaConfig(**kwargs)
        config.architectures = ["LlamaForCausalLM"]
    else:
        config = CodeLlamaConfig(**kwargs, variant=variant, supports_infilling=supports_infilling)
        config.architectures = ["CodeLlamaForCausalLM"]
    return config


def _resolve_dtype(dtype: str | torch.dtype | None, stored: torch.dtype) -> torch.dtype:
    if dtype is None:
        return stored
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise ConversionError(f"dtype must be one of {', '.join(DTYPES)}; found {dtype!r}")


# Rows per written block: small enough to bound memory, large enough that per-block overhead does not matter.
BLOCK_BYTES = 16 * 2**20


def row_blocks(
    slices: list[torch.Tensor],
    *,
    axis: int | None,
    heads: int | None,
    dtype: torch.dtype,
    release: Callable[[torch.Tensor], None] | None = None,
) -> Iterator[torch.Tensor]:
    """The merged (and, for wq/wk, rotary-permuted) tensor as consecutive row blocks of about BLOCK_BYTES.

    Slices split along rows are whole row ranges of the result, and each holds whole heads, so they are permuted
    one by one; slices split along columns are joined a block of rows at a time. No block is ever the whole tensor.
    Each piece of `slices` is passed to `release` once it has been read (and its block written), so the memory
    read from the shards stays at about one block.
    """
    release = release or (lambda piece: None)
    if axis is None:
        slices = slices[:1]  # replicated: every shard holds the same values
    if heads is not None:
        if heads % len(slices):  # heads straddle shards (never in Meta's releases): merge first
            permuted, axis = [permute_rotary(torch.cat(slices), heads)], 0
        else:
            permuted = [permute_rotary(piece, heads // len(slices)) for piece in slices]
        for piece in slices:
            release(piece)  # the permuted rows are a copy
        slices, release = permuted, (lambda piece: None)
    row_elements = slices[0][0].numel() * (len(slices) if axis == 1 else 1)
    step = max(1, BLOCK_BYTES // (row_elements * dtype.itemsize))
    if axis == 1:
        for row in range(0, slices[0].shape[0], step):
            pieces = [piece[row : row + step] for piece in slices]
            yield torch.cat(pieces, dim=1).to(dtype)
            for piece in pieces:
                release(piece)
        return
    for piece in slices:
        for row in range(0, piece.shape[0], step):
            yield piece[row : row + step].to(dtype)
            release(piece[row : row + step])


class _ByteRows:
    """The bytes of a contiguous tensor (no copy) as rows: the tensor's rows, or one row for a vector."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.count = tensor.shape[0] if tensor.dim() > 1 else 1
        self.size = tensor.numel() * tensor.element_size() // max(1, self.count)
        self._bytes = tensor.reshape(-1).view(torch.uint8).numpy().data

    def rows(self, start: int, stop: int) -> memoryview:
        return self._bytes[start * self.size : min(stop, self.count) * self.size]


def row_buffers(
    slices: list[torch.Tensor],
    *,
    axis: int | None,
    heads: int | None,
    release: Callable[[torch.Tensor], None] | None = None,
    locate: Callable[[torch.Tensor], tuple[Path, int] | None] | None = None,
) -> Iterator[list[memoryview] | FileSpan] | None:
    """The merged (and, for wq/wk, rotary-permuted) tensor's bytes as blocks of buffers into `slices` themselves.

    The same result as `row_blocks` where the dtype does not change, without copying a byte in this process: the
    rotary permutation only reorders whole rows, and slices split along columns only interleave their rows, so every
    output row is a row of the slices, which `ShardWriter` gathers into the file with `os.writev`. Each such block
    covers about BLOCK_BYTES, and its pieces of `slices` are passed to `release` once it is written. A slice that is
    written whole and in order, and that `locate` finds in its file (path, offset), is one `FileSpan` instead, which
    the kernel copies file to file. None where none of this applies (heads that straddle shards, slices that are
    not contiguous).
    """
    release = release or (lambda piece: None)
    if axis is None:
        slices = slices[:1]  # replicated: every shard holds the same values
    if not all(piece.is_contiguous() for piece in slices) or (heads is not None and heads % len(slices)):
        return None
    return _row_buffers(slices, axis=axis, heads=heads, release=release, locate=locate or (lambda piece: None))


def _row_buffers(
    slices: list[torch.Tensor],
    *,
    axis: int | None,
    heads: int | None,
    release: Callable[[torch.Tensor], None],
    locate: Callable[[torch.Tensor], tuple[Path, int] | None],
) -> Iterator[list[memoryview] | FileSpan]:
    rows = [_ByteRows(piece) for piece in slices]
    count = rows[0].count
    step = max(1, BLOCK_BYTES // max(1, rows[0].size * (len(slices) if axis == 1 else 1)))
    if axis == 1:  # each output row is the same row of every slice, side by side
        for start in range(0, count, step):
            stop = min(start + step, count)
            yield [piece.rows(row, row + 1) for row in range(start, stop) for piece in rows]
            for piece in slices:
                release(piece[start:stop])
        return
    for piece, piece_rows in zip(slices, rows, strict=True):
        if heads is None:
            if located := locate(piece):  # the kernel copies it from the file; no page is mapped
                yield FileSpan(located[0], located[1], piece_rows.rows(0, count))
                continue
            for start in range(0, count, step):
                yield [piece_rows.rows(start, start + step)]
                release(piece[start : start + step])
            continue
        # The rotary permutation moves whole rows within each head: output row i is input row order[i].
        local_heads = heads // len(slices)
        order = permute_rotary(torch.arange(count).unsqueeze(1), local_heads).flatten().tolist()
        per_block = max(1, step // (count // local_heads)) * (count // local_heads)  # whole heads: own input rows
        for start in range(0, count, per_block):
            yield [piece_rows.rows(row, row + 1) for row in order[start : start + per_block]]
            release(piece[start : start + per_block])


def _advancing(progress: Any, blocks: Iterator[Any]) -> Iterator[Any]:
    """`blocks` unchanged, advancing the progress bar by each block's bytes once it has been written."""
    for block in blocks:
        yield block
        if isinstance(block, FileSpan):
            progress.update(block.nbytes)
        elif isinstance(block, list):
            progress.update(sum(buffer.nbytes for buffer in block))
        else:
            progress.update(block.numel() * block.element_size())


def _write_weights(
    checkpoint: MetaCheckpoint, directory: Path, *, dtype: torch.dtype, max_shard_size: int
) -> ShardWriter:
    names = {name: str(hf_name(name)) for name in checkpoint.shapes}
    specs = [TensorSpec(names[name], shape, dtype) for name, shape in checkpoint.shapes.items()]
    writer = ShardWriter(directory, specs, max_shard_size=max_shard_size)
    with tqdm(total=writer.total_size, unit="B", unit_scale=True, desc="Converting weights") as progress:
        for group in checkpoint.groups():
            for name, slices in checkpoint.read_slices(group):
                heads, axis, release = rotary_heads(name, checkpoint.params), shard_axis(name), checkpoint.release_pages
                blocks: Iterator[Block] | None = None
                if slices[0].dtype == dtype:  # the bytes need no change: the kernel copies them from the shards
                    blocks = row_buffers(slices, axis=axis, heads=heads, release=release, locate=checkpoint.locate)
                if blocks is None:
                    blocks = row_blocks(slices, axis=axis, heads=heads, dtype=dtype, release=release)
                writer.write(names[name], _advancing(progress, blocks))
    writer.finish()
    return writer


def write_metadata(
    checkpoint: MetaCheckpoint,
    staging: Path,
    *,
    variant: str,
    output_format: str,
    dtype: torch.dtype,
    command: str,
    context_length: int | None = None,
    tokenizer: Any = None,
) -> LlamaConfig:
    """Config, generation config, tokenizer, code files (Code Llama format) and model card; returns the config.

    `tokenizer`: `load_tokenizer(checkpoint.tokenizer_path)`, where it was loaded ahead (the parallel path).
    """
    size = checkpoint.model_size
    context = context_length or max_context(size, variant)
    # In process, built after the weights are written, so that the tokenizer's memory and the weights' never add up.
    tokenizer = build_tokenizer(checkpoint.tokenizer_path, variant=variant, context_length=context, loaded=tokenizer)
    infilling = bool(tokenizer.supports_infilling)
    config = build_config(
        checkpoint.params,
        vocab_size=checkpoint.vocab_size,
        model_size=size,
        variant=variant,
        output_format=output_format,
        supports_infilling=infilling,
        dtype=dtype,
        context_length=context,
    )
    config.save_pretrained(staging)
    generation_config_for(config, tokenizer).save_pretrained(staging)  # stops on EOT / <step> where they apply
    if output_format == "codellama":
        tokenizer.save_pretrained(staging)
        save_remote_code(staging)  # code files + auto_map: loads with trust_remote_code, no plugin
    else:  # stock engines: exact ids through stock AutoTokenizer, no code files
        save_stock_tokenizer(
            tokenizer, staging, tokenizer_model=checkpoint.tokenizer_path, context_length=config.max_position_embeddings
        )
    facts = CardFacts(
        original_name=original_name(size, variant, checkpoint.directory.resolve().name),
        model_size=size,
        variant=variant,
        output_format=output_format,
        dtype=str(dtype).removeprefix("torch."),
        vocab_size=checkpoint.vocab_size,
        context_length=config.max_position_embeddings,
        supports_infilling=infilling,
        converter_version=__version__,
        command=command,
    )
    (staging / "README.md").write_text(model_card(facts), encoding="utf-8")
    return config


def convert(
    *,
    input_dir: str | Path,
    output_dir: str | Path,
    model_size: str | None = None,
    variant: str | None = None,
    dtype: str | torch.dtype | None = None,
    max_shard_size: str | int = "5GB",
    output_format: str = "codellama",
    verify: bool = False,
    force: bool = False,
    command: str | None = None,
    context_length: int | None = None,
) -> ConversionResult:
    """Convert Meta's Code Llama checkpoint in `input_dir` into a Hugging Face checkpoint in `output_dir`.

    Everything is checked before any tensor is converted; the output is written to a hidden directory beside
    `output_dir` and moved into place only once complete (and, with `verify`, once its logits match an independent
    forward of the original shards). Raises ConversionError for bad input.

    `context_length` is the context the checkpoint declares (`max_position_embeddings`, the tokenizer's
    `model_max_length`, the model card). Meta's `params.json` does not record it, so the default is Meta's release
    context for the size and variant; a model trained at another context (one of no released size) says so here.
    """
    start = time.perf_counter()
    output_dir = Path(output_dir)
    checkpoint, variant = check_inputs(
        Path(input_dir),
        output_dir,
        model_size=model_size,
        variant=variant,
        output_format=output_format,
        force=force,
        context_length=context_length,
    )
    return convert_checked(
        checkpoint,
        output_dir,
        variant=variant,
        dtype=dtype,
        max_shard_size=max_shard_size,
        output_format=output_format,
        verify=verify,
        force=force,
        command=command,
        context_length=context_length,
        start=start,
    )


def convert_checked(
    checkpoint: MetaCheckpoint,
    output_dir: Path,
    *,
    variant: str,
    dtype: str | torch.dtype | None,
    max_shard_size: str | int,
    output_format: str,
    verify: bool,
    force: bool,
    command: str | None,
    context_length: int | None,
    start: float,
) -> ConversionResult:
    """`convert` past its input checks: `checkpoint` and `variant` are what `check_inputs` returned (so a caller
    that checked already does not read every shard's pickle again); `start` is when the conversion began."""
    shard_bytes = parse_size(max_shard_size)
    if verify:
        checkpoint.verify_checksums()
    out_dtype = _resolve_dtype(dtype, checkpoint.dtype)
    difference = None
    with staged_output(output_dir, force=force) as staging:
        writer = _write_weights(checkpoint, staging, dtype=out_dtype, max_shard_size=shard_bytes)
        config = write_metadata(
            checkpoint,
            staging,
            variant=variant,
            output_format=output_format,
            dtype=out_dtype,
            command=command or API_COMMAND,
            context_length=context_length,
        )
        if verify:  # before the move: a checkpoint that fails verification never appears at output_dir
            # Imported here: it loads transformers' model code (about a second), which only verification needs.
            from .verify import verify_conversion

            difference = verify_conversion(checkpoint, staging, config)
    return ConversionResult(
        output_dir=output_dir,
        model_size=checkpoint.model_size,
        variant=variant,
        output_format=output_format,
        dtype=out_dtype,
        weight_files=writer.files,
        weight_bytes=writer.total_size,
        seconds=time.perf_counter() - start,
        peak_rss_bytes=peak_rss_bytes(),
        max_logit_difference=difference,
    )


__all__ = [
    "DTYPES",
    "FORMATS",
    "ConversionResult",
    "build_config",
    "build_tokenizer",
    "convert",
    "convert_checked",
    "load_tokenizer",
    "row_blocks",
    "row_buffers",
    "write_metadata",
]
