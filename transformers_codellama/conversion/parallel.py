"""`convert_in_parallel`: what `codellama-convert` runs, the weights here and the rest in a child process at once.

The weights are bytes copied in a new order (`weights`), which needs neither torch nor transformers (only a
conversion to another dtype casts, with torch, block by block). The config, tokenizer, code files and model card
do need transformers, whose imports take about three seconds, so a child process (`metadata_process`) starts at
launch and imports them while this process checks the input and copies the weights, then writes its files into the
same staging directory. The result is byte for byte what `convert.convert` writes in one process, and as atomic:
the staging directory becomes the output only once both have succeeded. `--verify` is `convert.convert`'s.
"""

from __future__ import annotations

from .inputs import ConversionJob
from .metadata_process import MetadataProcess
from .result import ConversionResult, peak_rss_bytes
from .weights import write_weights
from .writer import staged_output


def convert_in_parallel(job: ConversionJob, metadata: MetadataProcess) -> ConversionResult:
    """`convert.convert_checked(job)`, with the same output files, while `metadata` (the child the caller started
    for the job's input, and stops) writes everything but the weights."""
    checkpoint = job.checkpoint
    with staged_output(job.output_dir, force=job.force) as staging:
        metadata.start_writing(input_dir=str(checkpoint.directory), staging=str(staging), **job.metadata())
        try:
            writer = write_weights(checkpoint, staging, dtype=job.dtype, max_shard_size=job.max_shard_size)
            metadata.wait()
        except BaseException:
            metadata.stop()  # before the staging directory is removed: nothing writes into it afterwards
            raise
    # The peak memory is this process's or the child's, whichever is larger.
    return job.result(writer, dtype=job.dtype, peak_rss_bytes=max(peak_rss_bytes(), peak_rss_bytes(children=True)))


__all__ = ["convert_in_parallel"]
