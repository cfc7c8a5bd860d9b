"""Giving back the pages of memory-mapped shards as soon as their tensors are written.

Meta's shards are read through `torch.load(mmap=True)`, which maps each whole file; every page a tensor's bytes
are read from then counts in the process's resident memory until the file is unmapped, so memory would grow with
everything read since the shard was opened (a whole 70B layer is 1.7 GB). `MappedPages.release` drops a tensor's
pages from this process once it has been written (`madvise(MADV_DONTNEED)`); they stay in the page cache, and a
later read of the same bytes maps them again from the file, so nothing is lost.

That is only safe for clean pages of a file mapping (for anonymous memory it would zero the data), so a range is
released only if it lies inside a mapping of a shard file registered while that mapping is open, as
`/proc/self/maps` lists it. Elsewhere (not Linux) nothing is released and memory is bounded by a layer, as before.
The same listing says where in its file a mapped tensor's bytes lie (`locate`), so the writer can have the kernel
copy them from the file without mapping a page.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # tensors are passed in; the module itself needs no torch
    import torch

_MADV_DONTNEED = 4  # Linux
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def file_mappings(path: Path) -> list[tuple[int, int]]:
    """The address ranges at which this process maps `path` (empty where `/proc/self/maps` does not exist)."""
    return [(low, high) for low, high, _ in _file_mappings(path)]


def _file_mappings(path: Path) -> list[tuple[int, int, int]]:
    """(low address, high address, offset in the file of `low`) of each mapping of `path`."""
    target = str(path.resolve())
    ranges = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].rstrip("\n") == target:
                    low, high = (int(address, 16) for address in fields[0].split("-"))
                    ranges.append((low, high, int(fields[2], 16)))
    except OSError:
        return []
    return ranges


def _extent(tensor: torch.Tensor) -> tuple[int, int]:
    """The page-aligned address range holding a contiguous tensor's bytes."""
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    return start - start % mmap.PAGESIZE, end + (-end % mmap.PAGESIZE)


class MappedPages:
    """The open shard mappings whose pages may be released; `register` them while open, `clear` before closing."""

    def __init__(self) -> None:
        self._ranges: list[tuple[int, int]] = []
        self._files: list[tuple[int, int, int, Path]] = []  # low, high, file offset of low, file

    def register(self, path: Path, tensors: Iterable[torch.Tensor]) -> bool:
        """Allow releasing `tensors` (just loaded from `path` with mmap) if they all lie in mappings of `path`."""
        if _LIBC is None:
            return False
        mappings = _file_mappings(path)
        if not mappings:
            return False
        for tensor in tensors:
            storage = tensor.untyped_storage()
            start, end = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
            if storage.nbytes() and not any(low <= start and end <= high for low, high, _ in mappings):
                return False
        self._ranges.extend((low, high) for low, high, _ in mappings)
        self._files.extend((low, high, offset, path.resolve()) for low, high, offset in mappings)
        return True

    def locate(self, tensor: torch.Tensor) -> tuple[Path, int] | None:
        """The file and offset holding the bytes of `tensor`, a contiguous piece of a registered mapping, or None."""
        if not tensor.is_contiguous():
            return None
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        for low, high, offset, path in self._files:
            if low <= start and end <= high:
                return path, offset + start - low
        return None

    def release(self, tensor: torch.Tensor) -> None:
        """Drop the pages of `tensor`, a contiguous piece of a registered mapping, from resident memory."""
        if _LIBC is None or not tensor.numel() or not tensor.is_contiguous():
            return
        low, high = _extent(tensor)
        if any(start <= low and high <= end for start, end in self._ranges):
            _LIBC.madvise(ctypes.c_void_p(low), ctypes.c_size_t(high - low), _MADV_DONTNEED)

    def clear(self) -> None:
        """Forget every range: call before the mappings are closed, so that a reused address is never released."""
        self._ranges.clear()
        self._files.clear()


__all__ = ["MappedPages", "file_mappings"]
