"""Streaming safetensors shards and an all-or-nothing output directory.

The safetensors library serializes a whole dict of tensors at once, so a shard would sit in memory until it is
full. Every output shape and dtype is known before the first tensor is converted, so each shard's header can be
written first and each tensor appended, block of rows by block of rows, as soon as it is converted: memory stays at
one block, whatever `max_shard_size` is. A block is a tensor or, where the bytes need no change, a list of buffers
(rows read from the input shards, in output order) that `os.writev` gathers into the file, or a span of an input
file that `os.copy_file_range` copies: either way one copy, made by the kernel. Each finished shard is opened with the safetensors library (`safe_open`) to check its header, names
and shapes, so a file the library cannot read is never left behind.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeAlias

import psutil
from safetensors import SafetensorError, safe_open

from .errors import ConversionError

if TYPE_CHECKING:  # imported only to write tensor blocks: bytes copied unchanged need no torch
    import torch

# dtype (torch's name without "torch.") -> safetensors' name and item size.
SAFETENSORS_DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}
ITEM_SIZES = {"bfloat16": 2, "float16": 2, "float32": 4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})
# Buffers per `os.writev` call: the kernel's limit (IOV_MAX).
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") and "SC_IOV_MAX" in os.sysconf_names else 16


@dataclass(frozen=True)
class FileSpan:
    """Whole rows to copy unchanged from another file: `nbytes` bytes at `offset` of `path`.

    `data` is those bytes already in memory, or just their count where they are only in the file (as the converter's); the
    writer falls back to writing the buffer, or reading the file, where the kernel cannot copy between the files.
    """

    path: Path
    offset: int
    data: memoryview | int

    @property
    def nbytes(self) -> int:
        return self.data if isinstance(self.data, int) else self.data.nbytes


# A block of rows: a tensor, its raw bytes as buffers to be written one after another, or a span of another file.
Block: TypeAlias = "torch.Tensor | list[memoryview] | FileSpan"


def parse_size(text: str | int) -> int:
    """Bytes in a size such as `5GB` (decimal units), `2GiB` (binary units) or a plain integer."""
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise ConversionError(f"max shard size must look like 5GB, 500MB or 2GiB; found {text!r}")
    size = int(float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()])
    if size <= 0:
        raise ConversionError(f"max shard size must be positive; found {text!r}")
    return size


@dataclass(frozen=True)
class TensorSpec:
    """What will be written under `name`: its shape and dtype, known before the tensor exists."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype | str  # a torch dtype or its name ("bfloat16")

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * ITEM_SIZES[self.dtype_name]


def plan_shards(specs: Sequence[TensorSpec], max_shard_size: int) -> list[list[TensorSpec]]:
    """Split `specs`, in order, into shards of at most `max_shard_size` bytes (a larger tensor gets its own)."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for spec in specs:
        if shards[-1] and size + spec.nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += spec.nbytes
    return shards


def _header(specs: Sequence[TensorSpec], metadata: dict[str, str]) -> bytes:
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for spec in specs:
        header[spec.name] = {
            "dtype": SAFETENSORS_DTYPES[spec.dtype_name],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header so tensor data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text


class ShardWriter:
    """Writes the planned tensors, in plan order, into `model*.safetensors` under `directory`, plus the index."""

    def __init__(self, directory: Path, specs: Sequence[TensorSpec], *, max_shard_size: int) -> None:
        self.directory = directory
        self.shards = plan_shards(specs, max_shard_size)
        count = len(self.shards)
        self.files = (
            ["model.safetensors"]
            if count == 1
            else [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
        )
        self._pending: Iterator[tuple[int, int]] = (
            (s, t) for s, shard in enumerate(self.shards) for t in range(len(shard))
        )
        self._file: BinaryIO | None = None
        self.total_size = sum(spec.nbytes for spec in specs)

    def write(self, name: str, blocks: Iterable[Block]) -> None:
        """Append the next planned tensor, given as consecutive row blocks (or one block: the whole tensor).

        A block is a tensor of the planned dtype, or a list of buffers holding whole rows of it in order (raw
        little-endian bytes). Each block is written and dropped before the next is made, so a tensor never needs to
        exist whole.
        """
        shard, position = next(self._pending, (None, None))
        if shard is None or position is None:
            raise RuntimeError(f"ShardWriter: {name} was not planned")
        spec = self.shards[shard][position]
        if spec.name != name:
            raise RuntimeError(f"ShardWriter: expected {spec.name} next; got {name}")
        if position == 0:
            self._file = open(self.directory / self.files[shard], "wb")  # noqa: SIM115 (closed after the last tensor)
            self._file.write(_header(self.shards[shard], {"format": "pt"}))
        assert self._file is not None
        rows = 0
        row_bytes = spec.nbytes // spec.shape[0] if spec.shape and spec.shape[0] else 0
        for block in blocks:
            if isinstance(block, list | FileSpan):
                size = _write_gathered(self._file, block) if isinstance(block, list) else _copy_span(self._file, block)
                if not row_bytes or size % row_bytes:
                    raise RuntimeError(f"ShardWriter: {name} got {size} bytes, not whole rows of {spec}")
                rows += size // row_bytes
                continue
            if str(block.dtype) != f"torch.{spec.dtype_name}" or tuple(block.shape[1:]) != spec.shape[1:]:
                raise RuntimeError(f"ShardWriter: {name} block {tuple(block.shape)} {block.dtype} does not fit {spec}")
            import torch  # loaded already: the block is a tensor

            # Raw little-endian bytes through the buffer protocol: no copy beyond making the block contiguous.
            self._file.write(block.contiguous().reshape(-1).view(torch.uint8).numpy().data)
            rows += block.shape[0]
        if rows != spec.shape[0]:
            raise RuntimeError(f"ShardWriter: {name} got {rows} rows; planned {spec.shape}")
        if position == len(self.shards[shard]) - 1:
            self._file.close()
            self._file = None
            self._check(shard)

    def _check(self, shard: int) -> None:
        path = self.directory / self.files[shard]
        try:
            # numpy, not torch: only the header is read, and the copy without torch stays without it
            with safe_open(str(path), framework="numpy") as reader:
                found = {name: tuple(reader.get_slice(name).get_shape()) for name in reader.keys()}  # noqa: SIM118
        except SafetensorError as error:
            raise RuntimeError(f"{path}: safetensors cannot read the shard just written: {error}") from error
        if found != {spec.name: spec.shape for spec in self.shards[shard]}:
            raise RuntimeError(f"{path}: safetensors reads different tensors than were written")

    def finish(self) -> list[str]:
        """Check every planned tensor was written, write the index when there are several shards; the file names."""
        if next(self._pending, None) is not None:
            raise RuntimeError("ShardWriter: finished before every planned tensor was written")
        if len(self.files) > 1:
            weight_map = {
                spec.name: file for file, shard in zip(self.files, self.shards, strict=True) for spec in shard
            }
            index = {"metadata": {"total_size": self.total_size}, "weight_map": weight_map}
            (self.directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
        return self.files


def _write_gathered(file: BinaryIO, buffers: list[memoryview]) -> int:
    """Write `buffers` one after another at the file's position; returns the bytes written."""
    if not hasattr(os, "writev"):  # no gathering write on this platform
        return sum(file.write(buffer) for buffer in buffers)
    file.flush()  # the header (or a tensor block) may still sit in the file object's buffer
    descriptor, total = file.fileno(), 0
    for batch, expected in _batches(buffers):
        written = os.writev(descriptor, batch)
        if written < expected:  # a short write (signal, file size limit): finish it buffer by buffer
            written += _write_rest(descriptor, batch, written)
        total += written
    file.seek(0, os.SEEK_END)  # keep the file object's position in step with the descriptor's
    return total


# Bytes per write call. Measured on Linux 6.18 (ext4): 256 KiB writes run at about 5 GiB/s every time, while single
# writes of 1 MiB and more sometimes drop to under 1 GiB/s for a whole run (the page cache then allocates large
# folios for them, which can stall when memory is fragmented).
WRITE_BYTES = 256 * 2**10


def _batches(buffers: list[memoryview]) -> Iterator[tuple[list[memoryview], int]]:
    """`buffers` in order, as batches of at most IOV_MAX buffers and about WRITE_BYTES (a larger buffer is cut)."""
    batch: list[memoryview] = []
    size = 0
    for buffer in buffers:
        if buffer.nbytes > WRITE_BYTES:
            flat = buffer.cast("B") if buffer.ndim != 1 or buffer.format != "B" else buffer
            pieces = [flat[start : start + WRITE_BYTES] for start in range(0, flat.nbytes, WRITE_BYTES)]
        else:
            pieces = [buffer]
        for piece in pieces:
            batch.append(piece)
            size += piece.nbytes
            if size >= WRITE_BYTES or len(batch) == _IOV_MAX:
                yield batch, size
                batch, size = [], 0
    if batch:
        yield batch, size


def _copy_span(file: BinaryIO, span: FileSpan) -> int:
    """Copy `span` to the file's position inside the kernel; through this process where the kernel cannot copy."""
    if not hasattr(os, "copy_file_range"):
        return _write_span_through(file, span)
    file.flush()
    done, size = 0, span.nbytes
    with open(span.path, "rb") as source:
        try:
            while done < size:
                copied = os.copy_file_range(source.fileno(), file.fileno(), size - done, span.offset + done)
                if copied == 0:
                    raise OSError(errno.EIO, f"{span.path} ends before offset {span.offset + size}")
                done += copied
        except OSError as error:
            if error.errno not in _NO_KERNEL_COPY or done:
                raise
            return _write_span_through(file, span)  # e.g. across file systems on older kernels
    file.seek(0, os.SEEK_END)
    return done


def _write_span_through(file: BinaryIO, span: FileSpan) -> int:
    """Write `span` from its buffer or, where it has none, by reading its file a block at a time."""
    if not isinstance(span.data, int):
        return _write_gathered(file, [span.data])
    done = 0
    with open(span.path, "rb") as source:
        source.seek(span.offset)
        while done < span.data:
            chunk = source.read(min(span.data - done, 16 * 2**20))
            if not chunk:
                raise OSError(errno.EIO, f"{span.path} ends before offset {span.offset + span.data}")
            done += file.write(chunk)
    return done


# copy_file_range refusing the pair of files (rather than failing to read or write them).
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


def _write_rest(descriptor: int, buffers: list[memoryview], done: int) -> int:
    written = 0
    for buffer in buffers:
        if done >= buffer.nbytes:
            done -= buffer.nbytes
            continue
        remaining = buffer[done:].cast("B")
        done = 0
        while remaining.nbytes:
            count = os.write(descriptor, remaining)
            written += count
            remaining = remaining[count:]
    return written


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def check_output_dir(output_dir: Path, *, force: bool) -> None:
    """Refuse an existing non-empty output directory (or a file) unless `force`; touches nothing."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ConversionError(f"{output_dir}: output path exists and is not a directory")
    if output_dir.is_dir() and not _is_empty_dir(output_dir) and not force:
        raise ConversionError(f"{output_dir}: output directory is not empty (pass --force to replace it)")


_PARTIAL = ".{name}.partial-{pid}"


def _remove_stale_partials(output_dir: Path) -> None:
    # A conversion killed earlier leaves its hidden staging directory; its process is gone, so it is safe to remove.
    pattern = re.compile(re.escape(f".{output_dir.name}.") + r"(?:partial|replaced)-(\d+)")
    for path in output_dir.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not psutil.pid_exists(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def staged_output(output_dir: Path, *, force: bool) -> Iterator[Path]:
    """A hidden directory beside `output_dir` to write into; renamed to `output_dir` only if the block completes.

    A conversion killed at any point leaves only `.NAME.partial-PID`, which no loader mistakes for a checkpoint
    and which the next run removes.
    """
    check_output_dir(output_dir, force=force)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(output_dir)
    staging = output_dir.parent / _PARTIAL.format(name=output_dir.name, pid=os.getpid())
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        check_output_dir(output_dir, force=force)  # something may have appeared there while we converted
        if output_dir.is_dir() and not _is_empty_dir(output_dir):
            # Move the old one aside first, so the destination is never a mixture of the two.
            replaced = output_dir.parent / f".{output_dir.name}.replaced-{os.getpid()}"
            os.rename(output_dir, replaced)
            os.rename(staging, output_dir)
            shutil.rmtree(replaced, ignore_errors=True)
        else:
            if output_dir.is_dir():
                output_dir.rmdir()
            os.rename(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = [
    "Block",
    "FileSpan",
    "ShardWriter",
    "TensorSpec",
    "check_output_dir",
    "parse_size",
    "plan_shards",
    "staged_output",
]
