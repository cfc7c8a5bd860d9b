"""What a `torch.save` file holds (names, dtypes, shapes, strides, byte offsets), read without torch.

A `.pth` written by `torch.save` is a zip archive, stored uncompressed: `<name>/data.pkl` pickles the state dict,
and each tensor storage is the file `<name>/data/<key>`. Reading the pickle with an `Unpickler` whose `find_class`
knows only the few globals a tensor state dict uses, and maps each to a plain stand-in here (never to torch), means
nothing the file names is ever called: any other global is refused before anything is built. The storages' byte
offsets in the file come from the zip's own headers, so the converter can copy a tensor's bytes with the kernel
without importing torch (about a second) or mapping a page.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConversionError

# torch's legacy typed-storage class names (what `torch.save` pickles for a storage) -> (dtype name, item size).
STORAGE_DTYPES = {
    "BFloat16Storage": ("bfloat16", 2),
    "HalfStorage": ("float16", 2),
    "FloatStorage": ("float32", 4),
    "DoubleStorage": ("float64", 8),
    "ByteStorage": ("uint8", 1),
    "CharStorage": ("int8", 1),
    "ShortStorage": ("int16", 2),
    "IntStorage": ("int32", 4),
    "LongStorage": ("int64", 8),
    "BoolStorage": ("bool", 1),
}
FLOATING_DTYPES = frozenset({"bfloat16", "float16", "float32", "float64"})


@dataclass(frozen=True)
class TensorRecord:
    """One tensor of a `.pth` file: where its elements lie, in the file's own terms (no data is read)."""

    dtype: str  # torch's name without "torch.", e.g. "bfloat16"
    itemsize: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    storage_offset: int  # in elements, from the start of the storage
    storage_key: str
    data_offset: int = -1  # byte offset of the storage's first byte in the file (set once the zip is read)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize

    @property
    def offset(self) -> int:
        """Byte offset in the file of the tensor's first element."""
        return self.data_offset + self.storage_offset * self.itemsize

    @property
    def is_contiguous(self) -> bool:
        """Row-major with no gaps, as torch's `is_contiguous` (dimensions of size 1 may have any stride)."""
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.stride), strict=True):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    def element_offsets(self) -> list[int]:
        """Byte offset in the file of every element, in row-major order (for small tensors: the norms)."""
        offsets = [self.offset]
        for size, stride in zip(self.shape, self.stride, strict=True):
            offsets = [base + index * stride * self.itemsize for base in offsets for index in range(size)]
        return offsets

    def read_bytes(self, file: io.BufferedReader) -> bytes:
        """The tensor's elements, row-major, as raw bytes read from the open file."""
        if self.is_contiguous:
            file.seek(self.offset)
            return file.read(self.nbytes)
        chunks = []
        for offset in self.element_offsets():
            file.seek(offset)
            chunks.append(file.read(self.itemsize))
        return b"".join(chunks)


@dataclass(frozen=True)
class _StorageType:
    dtype: str
    itemsize: int


@dataclass(frozen=True)
class _Storage:
    kind: _StorageType
    key: str
    numel: int


def _rebuild_tensor(
    storage: _Storage, storage_offset: int, size: Any, stride: Any, requires_grad: Any, hooks: Any, metadata: Any = None
) -> TensorRecord:
    """Stand-in for `torch._utils._rebuild_tensor_v2`: records the arguments, builds nothing."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor's storage is not a storage reference")
    return TensorRecord(
        storage.kind.dtype, storage.kind.itemsize, tuple(size), tuple(stride), int(storage_offset), storage.key
    )


class _TensorOnlyUnpickler(pickle.Unpickler):
    """Unpickles a tensor state dict into `TensorRecord`s; every other global is refused before it is called."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(*STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"persistent id {pid!r:.60} is not a tensor storage")
        return _Storage(pid[1], str(pid[2]), int(pid[4]))


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length


def _data_start(file: io.BufferedReader, info: zipfile.ZipInfo) -> int:
    """Where the bytes of a stored (uncompressed) zip member begin in the file."""
    file.seek(info.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(file.read(_LOCAL_HEADER.size))
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def read_pth(path: Path) -> dict[str, TensorRecord]:
    """Every tensor of the state dict in `path` (a `torch.save` zip), located in the file; no torch, nothing called.

    Raises ConversionError naming `path` for a pickle that holds anything but tensors, for a file that is not a
    complete torch zip, and for a state dict that is not names to tensors.
    """
    try:
        with open(path, "rb") as file, zipfile.ZipFile(file) as archive:
            members = {info.filename: info for info in archive.infolist()}
            pickles = [name for name in members if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise zipfile.BadZipFile(f"expected one <name>/data.pkl; found {len(pickles)}")
            prefix = pickles[0].removesuffix("data.pkl")
            order = members.get(f"{prefix}byteorder")
            if order is not None and archive.read(order).strip() not in (b"little", b""):
                raise zipfile.BadZipFile("the tensors are stored big-endian")
            try:
                state = _TensorOnlyUnpickler(io.BytesIO(archive.read(pickles[0]))).load()
            except pickle.UnpicklingError as error:
                raise ConversionError(
                    f"{path}: refused, the pickle holds code or objects, not only tensors ({_first_line(error)})"
                ) from None
            if not isinstance(state, dict) or not all(isinstance(v, TensorRecord) for v in state.values()):
                raise ConversionError(
                    f"{path}: expected a dict of tensor names to tensors; found {type(state).__name__}"
                )
            located = {}
            for name, record in state.items():
                info = members.get(f"{prefix}data/{record.storage_key}")
                if info is None:
                    raise zipfile.BadZipFile(f"storage {record.storage_key} of {name} is missing")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise zipfile.BadZipFile(f"storage {record.storage_key} is compressed")
                last = record.storage_offset + sum(
                    (s - 1) * st for s, st in zip(record.shape, record.stride, strict=True)
                )
                if record.numel and (record.storage_offset < 0 or (last + 1) * record.itemsize > info.file_size):
                    raise zipfile.BadZipFile(f"tensor {name} lies outside its storage")
                located[str(name)] = replace(record, data_offset=_data_start(file, info))
            if located and max(r.offset + r.nbytes for r in located.values()) > path.stat().st_size:
                raise zipfile.BadZipFile("the file ends inside a tensor")
            return located
    except ConversionError:
        raise
    except Exception as error:  # a malformed pickle or zip fails in many ways; all mean the file is unreadable
        raise ConversionError(
            f"{path}: truncated or corrupt shard, not a readable torch zip file ({_first_line(error)})"
        ) from None


__all__ = ["FLOATING_DTYPES", "STORAGE_DTYPES", "TensorRecord", "read_pth"]
