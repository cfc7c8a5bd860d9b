"""`convert_in_parallel`: what `codellama-convert` runs, the weights here and the rest in a child process at once.

A conversion that keeps the stored dtype needs no arithmetic: the weights are bytes copied in a new order
(`unchanged_weights`), which needs neither torch nor transformers. The config, tokenizer, code files and model
card do need transformers, whose imports take about three seconds, so a child process (`metadata_process`) starts
at launch and imports them while this process checks the input and copies the weights, then writes its files into
the same staging directory. The result is byte for byte what `convert.convert` writes in one process, and as
atomic: the staging directory becomes the output only once both have succeeded.

Everything else (another dtype, verification, a layout whose bytes cannot be copied as they are) is handed to
`convert.convert`, in this process.
"""

from __future__ import annotations

import time
from pathlib import Path

from .choices import DTYPE_NAMES
from .inputs import check_inputs
from .metadata_process import MetadataProcess
from .result import API_COMMAND, ConversionResult, peak_rss_bytes
from .unchanged_weights import unsupported_reason, write_unchanged_weights
from .writer import parse_size, staged_output


def convert_in_parallel(
    *,
    input_dir: str | Path,
    output_dir: str | Path,
    model_size: str | None = None,
    variant: str | None = None,
    dtype: str | None = None,
    max_shard_size: str | int = "5GB",
    output_format: str = "codellama",
    force: bool = False,
    command: str | None = None,
    context_length: int | None = None,
    metadata: MetadataProcess | None = None,
) -> ConversionResult:
    """`convert.convert(...)` without `verify`, with the same arguments, checks, errors and output files.

    Where the stored dtype is kept, the weights are copied here while a child process writes the other files;
    otherwise this is `convert.convert` itself. `metadata`: that child, if the caller started it already (for
    `input_dir`); it is stopped whatever happens.
    """
    start = time.perf_counter()
    # First: the child's imports overlap everything below.
    with metadata if metadata is not None else MetadataProcess(Path(input_dir)) as metadata:
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
        stored = checkpoint.dtype_name
        if dtype not in (None, stored) or stored not in DTYPE_NAMES or unsupported_reason(checkpoint):
            metadata.stop()
            from .convert import convert_checked  # torch and transformers: the tensor path

            return convert_checked(
                checkpoint,
                output_dir,
                variant=variant,
                dtype=dtype,
                max_shard_size=max_shard_size,
                output_format=output_format,
                verify=False,
                force=force,
                command=command,
                context_length=context_length,
                start=start,
            )
        shard_bytes = parse_size(max_shard_size)
        with staged_output(output_dir, force=force) as staging:
            metadata.start_writing(
                input_dir=str(input_dir),
                staging=str(staging),
                variant=variant,
                output_format=output_format,
                dtype=stored,
                command=command or API_COMMAND,
                context_length=context_length,
            )
            try:
                writer = write_unchanged_weights(checkpoint, staging, max_shard_size=shard_bytes)
                metadata.wait()
            except BaseException:
                metadata.stop()  # before the staging directory is removed: nothing writes into it afterwards
                raise
    return ConversionResult(
        output_dir=output_dir,
        model_size=checkpoint.model_size,
        variant=variant,
        output_format=output_format,
        dtype=stored,
        weight_files=writer.files,
        weight_bytes=writer.total_size,
        seconds=time.perf_counter() - start,
        peak_rss_bytes=max(peak_rss_bytes(), peak_rss_bytes(children=True)),  # this process, the child
        max_logit_difference=None,
    )


__all__ = ["convert_in_parallel"]
