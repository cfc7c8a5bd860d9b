"""Writing the Hugging Face weights straight from the bytes of Meta's shards, without torch.

Where the dtype does not change, every output row is a row of some shard: slices split along rows are whole row
ranges of the result (the rotary permutation of wq/wk only reorders rows within each head), and slices split along
columns interleave their rows. So the output needs no arithmetic, only bytes in the right order:

- a slice written whole and in order is a `FileSpan`, which the kernel copies file to file (`copy_file_range`);
- permuted and column-split tensors are read a block of whole rows at a time from each shard (`os.preadv`, one
  read per shard and block, into one reused buffer) and written in output order with gathering writes
  (`os.writev`, about `writer.WRITE_BYTES` each).

Nothing is memory-mapped, so the memory read stays one block (about BLOCK_BYTES), and nothing imports torch: the
locations come from `MetaCheckpoint.records` (`pth_reader`). The output is byte for byte what the tensor path in
`convert` writes (`row_blocks`: `torch.cat` and `permute_rotary`), which the tests check.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

from huggingface_hub.utils import tqdm

from .mapping import hf_name, rotary_heads, rotary_row_order, shard_axis
from .meta_checkpoint import MetaCheckpoint
from .pth_reader import TensorRecord
from .writer import FileSpan, ShardWriter, TensorSpec

# Bytes read per block (all shards together): small enough to bound memory, large enough that per-block overhead
# (one read per shard, a list of row views) does not matter.
BLOCK_BYTES = 16 * 2**20


def unsupported_reason(checkpoint: MetaCheckpoint) -> str | None:
    """Why the bytes cannot be copied unchanged (then the tensor path converts), or None where they can."""
    if not hasattr(os, "pread"):
        return "this platform has no positioned reads (os.pread)"
    shards = len(checkpoint.shard_paths)
    for records in checkpoint.records:
        for name, record in records.items():
            if name in checkpoint.shapes and not record.is_contiguous:
                return f"tensor {name} is not stored contiguously"
    for name in checkpoint.shapes:
        heads = rotary_heads(name, checkpoint.params)
        if heads is not None and heads % shards:
            return f"the {heads} heads of {name} straddle the {shards} shards"
    return None


class _Rows:
    """One shard's slice of a tensor as rows of bytes in its file (a vector is one row)."""

    def __init__(self, descriptor: int, path: Path, record: TensorRecord) -> None:
        self.descriptor, self.path, self.record = descriptor, path, record
        self.count = record.shape[0] if len(record.shape) > 1 else 1
        self.size = record.nbytes // max(1, self.count)

    def read(self, start: int, stop: int, into: memoryview) -> memoryview:
        """Rows [start, stop) read into the front of `into`; returns that part of it."""
        view = into[: (stop - start) * self.size]
        done, offset = 0, self.record.offset + start * self.size
        while done < view.nbytes:
            count = _read_at(self.descriptor, view[done:], offset + done)
            if count == 0:
                raise OSError(f"{self.path} ends inside tensor rows at offset {offset + done}")
            done += count
        return view


def _read_at(descriptor: int, into: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(descriptor, [into], offset)
    data = os.pread(descriptor, into.nbytes, offset)  # platforms without preadv: one more copy
    into[: len(data)] = data
    return len(data)


class _Buffer:
    """One reusable read buffer, grown to the largest block asked for."""

    def __init__(self) -> None:
        self._data = bytearray()

    def get(self, size: int) -> memoryview:
        if len(self._data) < size:
            self._data = bytearray(size)
        return memoryview(self._data)


def tensor_blocks(
    slices: list[_Rows], *, axis: int | None, heads: int | None, buffer: _Buffer
) -> Iterator[list[memoryview] | FileSpan]:
    """The merged (and, for wq/wk, rotary-permuted) tensor as file spans and blocks of row buffers, in order.

    Each list of buffers is only valid until the next block is asked for: they are views into `buffer`.
    """
    if axis is None:
        slices = slices[:1]  # replicated: every shard holds the same values
    count = slices[0].count
    if axis == 1:  # each output row is the same row of every slice, side by side
        step = max(1, BLOCK_BYTES // sum(piece.size for piece in slices))
        for start in range(0, count, step):
            stop = min(start + step, count)
            view, parts = buffer.get((stop - start) * sum(piece.size for piece in slices)), []
            for piece in slices:
                parts.append(piece.read(start, stop, view))
                view = view[parts[-1].nbytes :]
            yield [
                part[row * piece.size : (row + 1) * piece.size]
                for row in range(stop - start)
                for piece, part in zip(slices, parts, strict=True)
            ]
        return
    for piece in slices:
        if heads is None:  # the kernel copies it from the file
            yield FileSpan(piece.path, piece.record.offset, piece.record.nbytes)
            continue
        # The rotary permutation moves whole rows within each head: output row i is input row order[i].
        local_heads = heads // len(slices)
        head_rows = count // local_heads
        order = rotary_row_order(count, local_heads)
        per_block = max(1, BLOCK_BYTES // max(1, piece.size * head_rows)) * head_rows  # whole heads: own rows
        for start in range(0, count, per_block):
            stop = min(start + per_block, count)
            rows = piece.read(start, stop, buffer.get((stop - start) * piece.size))
            yield [rows[(row - start) * piece.size : (row - start + 1) * piece.size] for row in order[start:stop]]


def block_bytes(block: list[memoryview] | FileSpan) -> int:
    """The bytes a block writes."""
    return block.nbytes if isinstance(block, FileSpan) else sum(part.nbytes for part in block)


def write_unchanged_weights(
    checkpoint: MetaCheckpoint,
    directory: Path,
    *,
    max_shard_size: int,
) -> ShardWriter:
    """Write every tensor of `checkpoint`, in its stored dtype, as safetensors shards under `directory`.

    Only for checkpoints `unsupported_reason` accepts. A progress bar counts the bytes written.
    """
    names = {name: str(hf_name(name)) for name in checkpoint.shapes}
    specs = [TensorSpec(names[name], shape, checkpoint.dtype_name) for name, shape in checkpoint.shapes.items()]
    writer = ShardWriter(directory, specs, max_shard_size=max_shard_size)
    buffer = _Buffer()
    with ExitStack() as files:
        progress = files.enter_context(
            tqdm(total=writer.total_size, unit="B", unit_scale=True, desc="Converting weights")
        ).update
        descriptors = [files.enter_context(open(path, "rb")).fileno() for path in checkpoint.shard_paths]
        for group in checkpoint.groups():
            for name in group:
                slices = [
                    _Rows(descriptor, path, records[name])
                    for descriptor, path, records in zip(
                        descriptors, checkpoint.shard_paths, checkpoint.records, strict=True
                    )
                ]
                blocks = tensor_blocks(
                    slices, axis=shard_axis(name), heads=rotary_heads(name, checkpoint.params), buffer=buffer
                )
                writer.write(names[name], _reporting(blocks, progress))
    writer.finish()
    return writer


def _reporting(
    blocks: Iterator[list[memoryview] | FileSpan], progress: Callable[[int], object]
) -> Iterator[list[memoryview] | FileSpan]:
    for block in blocks:
        yield block
        progress(block_bytes(block))


__all__ = ["BLOCK_BYTES", "tensor_blocks", "unsupported_reason", "write_unchanged_weights"]
