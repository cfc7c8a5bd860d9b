"""Writing the Hugging Face weights from the bytes of Meta's shards: the converter's one interleave-and-copy.

Every output row is a row of some shard: slices split along rows are whole row ranges of the result (the rotary
permutation of wq/wk only reorders rows within each head, wherever the heads fall among the shards), and slices
split along columns interleave their rows. So the output needs no arithmetic, only bytes in the right order:

- a slice written whole and in order is a `FileSpan`, which the kernel copies file to file (`copy_file_range`);
- permuted and column-split tensors are read a block of whole rows at a time from each shard (`os.preadv`, one
  read per shard and block, into one reused buffer) and written in output order with gathering writes
  (`os.writev`, about `writer.WRITE_BYTES` each).

Nothing is memory-mapped, so the memory read stays one block (about BLOCK_BYTES), and nothing imports torch: the
locations come from `MetaCheckpoint.records` (`pth_reader`). Only a conversion to another dtype does arithmetic: each
block of rows, once in output order, is cast with torch (`_cast`), which is what bfloat16 needs.
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

# What `tensor_blocks` yields: rows as buffers in output order, or a span of a shard file (see `writer.Block`).
ByteBlock = list[memoryview] | FileSpan


class _Rows:
    """One shard's slice of a tensor as rows of bytes in its file (a vector is one row)."""

    def __init__(self, descriptor: int, path: Path, record: TensorRecord) -> None:
        self.descriptor, self.path, self.record = descriptor, path, record
        self.count = record.shape[0] if len(record.shape) > 1 else 1
        self.size = record.nbytes // max(1, self.count)

    def read(self, start: int, stop: int, into: memoryview) -> memoryview:
        """Rows [start, stop), row-major, read into the front of `into`; returns that part of it."""
        view = into[: (stop - start) * self.size]
        if self.record.is_contiguous:
            self._read(view, self.record.offset + start * self.size)
        else:
            self._read_strided(start, stop, view)
        return view

    def _read(self, view: memoryview, offset: int) -> None:
        done = 0
        while done < view.nbytes:
            count = _read_at(self.descriptor, view[done:], offset + done)
            if count == 0:
                raise OSError(f"{self.path} ends inside tensor rows at offset {offset + done}")
            done += count

    def _read_strided(self, start: int, stop: int, view: memoryview) -> None:
        # A layout torch.save kept (never in Meta's releases): read the bytes the rows span, then gather them.
        import numpy

        record, item = self.record, f"V{self.record.itemsize}"
        shape = (stop - start, *record.shape[1:]) if len(record.shape) > 1 else record.shape
        strides = [stride * record.itemsize for stride in record.stride]
        first = record.offset + (start * strides[0] if len(record.shape) > 1 else 0)
        spanned = bytearray(
            sum((size - 1) * stride for size, stride in zip(shape, strides, strict=True)) + record.itemsize
        )
        self._read(memoryview(spanned), first)
        elements = numpy.frombuffer(spanned, dtype=item)
        rows = numpy.lib.stride_tricks.as_strided(elements, shape=shape, strides=strides)
        numpy.copyto(numpy.frombuffer(view, dtype=item).reshape(shape), rows)


def _read_at(descriptor: int, into: memoryview, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(descriptor, [into], offset)
    if hasattr(os, "pread"):  # platforms without preadv: one more copy
        data = os.pread(descriptor, into.nbytes, offset)
    else:  # nor pread (Windows): one reader at a time, so seeking first is as good
        os.lseek(descriptor, offset, os.SEEK_SET)
        data = os.read(descriptor, into.nbytes)
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


def _read_merged(slices: list[_Rows], start: int, stop: int, into: memoryview) -> memoryview:
    """Rows [start, stop) of the slices joined along rows (each slice has `count` rows), read into `into`."""
    count, done = slices[0].count, 0
    for index in range(start // count, (stop - 1) // count + 1):
        low, high = max(start, index * count) - index * count, min(stop, (index + 1) * count) - index * count
        done += slices[index].read(low, high, into[done:]).nbytes
    return into[:done]


def tensor_blocks(
    slices: list[_Rows], *, axis: int | None, heads: int | None, buffer: _Buffer, spans: bool = True
) -> Iterator[ByteBlock]:
    """The merged (and, for wq/wk, rotary-permuted) tensor as file spans and blocks of row buffers, in order.

    Each list of buffers is only valid until the next block is asked for: they are views into `buffer`. `spans`:
    whether a slice stored whole and in order may be one `FileSpan` (else it is read in blocks of rows too).
    """
    if axis is None:
        slices = slices[:1]  # replicated: every shard holds the same values
    count, size = slices[0].count, slices[0].size
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
    if heads is None:
        step = max(1, BLOCK_BYTES // max(1, size))
        for piece in slices:
            if spans and piece.record.is_contiguous:  # the kernel copies it from the file
                yield FileSpan(piece.path, piece.record.offset, piece.record.nbytes)
                continue
            for start in range(0, count, step):
                stop = min(start + step, count)
                yield [piece.read(start, stop, buffer.get((stop - start) * size))]
        return
    # The rotary permutation moves whole rows within each head: output row i is input row order[i] of the slices
    # joined along rows, so a block of whole heads needs only its own rows (from one shard, or two where a head
    # straddles them).
    total = count * len(slices)
    head_rows = total // heads
    order = rotary_row_order(total, heads)
    per_block = max(1, BLOCK_BYTES // max(1, size * head_rows)) * head_rows
    for start in range(0, total, per_block):
        stop = min(start + per_block, total)
        rows = _read_merged(slices, start, stop, buffer.get((stop - start) * size))
        yield [rows[(row - start) * size : (row - start + 1) * size] for row in order[start:stop]]


def block_bytes(block: ByteBlock) -> int:
    """The bytes a block writes."""
    return block.nbytes if isinstance(block, FileSpan) else sum(part.nbytes for part in block)


def _cast(blocks: Iterator[ByteBlock], stored: str, dtype: str) -> Iterator[ByteBlock]:
    """Each block of rows (buffers, no file spans) in `dtype`: the one step of a conversion that is arithmetic."""
    import torch  # bfloat16 has no other implementation here

    source, target = getattr(torch, stored), getattr(torch, dtype)
    for block in blocks:
        assert not isinstance(block, FileSpan)  # tensor_blocks(spans=False)
        rows = torch.frombuffer(bytearray().join(block), dtype=source)
        yield [rows.to(target).view(torch.uint8).numpy().data]


def write_weights(checkpoint: MetaCheckpoint, directory: Path, *, dtype: str, max_shard_size: int) -> ShardWriter:
    """Write every tensor of `checkpoint` as safetensors shards under `directory`, in `dtype` (a torch dtype name).

    A progress bar counts the bytes written.
    """
    names = {name: str(hf_name(name)) for name in checkpoint.shapes}
    specs = [TensorSpec(names[name], shape, dtype) for name, shape in checkpoint.shapes.items()]
    writer = ShardWriter(directory, specs, max_shard_size=max_shard_size)
    buffer, cast = _Buffer(), dtype != checkpoint.dtype_name
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
                layout = {"axis": shard_axis(name), "heads": rotary_heads(name, checkpoint.params)}
                blocks = tensor_blocks(slices, **layout, buffer=buffer, spans=not cast)
                if cast:
                    blocks = _cast(blocks, checkpoint.dtype_name, dtype)
                writer.write(names[name], _reporting(blocks, progress))
    writer.finish()
    return writer


def _reporting(blocks: Iterator[ByteBlock], progress: Callable[[int], object]) -> Iterator[ByteBlock]:
    for block in blocks:
        yield block
        progress(block_bytes(block))


__all__ = ["BLOCK_BYTES", "block_bytes", "tensor_blocks", "write_weights"]
