"""Reading and validating a Meta Code Llama checkpoint directory, lazily.

`MetaCheckpoint.open` checks the whole directory (shard set, key sets, every shape against params.json, the
tokenizer) before a single tensor is converted, from what each shard's pickle says about its tensors
(`pth_reader.read_pth`: names, dtypes, shapes and where their bytes lie), without torch and without calling
anything the pickle names: a shard that would run code is refused before any runs. `records` keeps those
locations, from which the converter copies bytes (`weights`). Where tensors are needed (verification), `read_slices`
memory-maps the shards with `torch.load(..., mmap=True, weights_only=True)` and hands out tensors a group at a time,
dropping the mappings after each group, so the pages read stay bounded by one layer.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import sentencepiece

from .errors import ConversionError
from .mapping import DROPPED_TENSORS, MetaParams, meta_shapes, parse_params, shard_axis
from .pth_reader import FLOATING_DTYPES, TensorRecord, read_pth

if TYPE_CHECKING:  # imported where tensors are read: checking and copying bytes need no torch
    import torch

_SHARD_NAME = re.compile(r"consolidated\.(\d{2})\.pth")


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def load_shard(path: Path) -> dict[str, torch.Tensor]:
    """Memory-map one `consolidated.NN.pth`; a ConversionError names the file if it is unreadable or unsafe."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refuses globals outside torch's allow-list before calling them, so the code never runs.
        blocked = next((line for line in str(error).splitlines() if "GLOBAL" in line), _first_line(error))
        raise ConversionError(
            f"{path}: refused, the pickle holds code or objects, not only tensors ({blocked.strip()})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise ConversionError(
            f"{path}: truncated or corrupt shard, not a readable torch zip file ({_first_line(error)})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: expected a dict of tensor names to tensors; found {type(state).__name__}")
    return state


def find_shards(directory: Path) -> list[Path]:
    """`consolidated.00.pth` ... `consolidated.NN.pth` in order; a ConversionError names a gap in the numbering."""
    found = {int(m.group(1)): p for p in directory.iterdir() if (m := _SHARD_NAME.fullmatch(p.name))}
    if not found:
        raise ConversionError(f"{directory}: no consolidated.NN.pth shards found")
    for index in range(max(found) + 1):
        if index not in found:
            raise ConversionError(
                f"{directory / f'consolidated.{index:02d}.pth'}: shard is missing (found {len(found)} "
                f"shards up to consolidated.{max(found):02d}.pth)"
            )
    return [found[index] for index in sorted(found)]


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


@dataclass
class MetaCheckpoint:
    """A Meta checkpoint directory whose shards, params.json and tokenizer.model agree with each other."""

    directory: Path
    params: MetaParams
    shard_paths: list[Path]
    tokenizer_path: Path
    vocab_size: int
    dtype_name: str  # as torch names it, without "torch.": "bfloat16" in Meta's releases
    shapes: dict[str, tuple[int, ...]] = field(repr=False)  # full (merged) shape of every tensor to convert
    records: list[dict[str, TensorRecord]] = field(default_factory=list, repr=False)  # per shard: where tensors lie

    @classmethod
    def open(cls, directory: str | Path) -> MetaCheckpoint:
        """Check `directory` completely (no tensor data is read except the replicated norms) and describe it."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ConversionError(f"{directory}: input directory does not exist")
        params_path = directory / "params.json"
        try:
            params = parse_params(json.loads(params_path.read_text(encoding="utf-8")), source=str(params_path))
        except FileNotFoundError:
            raise ConversionError(f"{params_path}: file is missing") from None
        except json.JSONDecodeError as error:
            raise ConversionError(f"{params_path}: not valid JSON ({error})") from None
        tokenizer_path = directory / "tokenizer.model"
        if not tokenizer_path.is_file():
            raise ConversionError(f"{tokenizer_path}: file is missing (Code Llama's SentencePiece tokenizer)")
        shard_paths = find_shards(directory)
        scan = _scan(shard_paths)
        vocab_size = _vocab_size(params, params_path, tokenizer_path, scan, shard_paths[0])
        shapes = meta_shapes(params, vocab_size)
        _check_shapes(shard_paths, scan, shapes, params_path)
        dtype = scan[0]["tok_embeddings.weight"].dtype
        records = [{name: entry.record for name, entry in entries.items()} for entries in scan]
        return cls(directory, params, shard_paths, tokenizer_path, vocab_size, dtype, shapes, records)

    @property
    def model_size(self) -> str:
        return self.params.model_size

    @property
    def dtype(self) -> torch.dtype:
        """The stored dtype as a torch dtype (imports torch)."""
        import torch

        return getattr(torch, self.dtype_name)

    def groups(self) -> list[list[str]]:
        """Tensor names in write order, grouped so that one group (at most a layer) is mapped at a time."""
        layers = [[n for n in self.shapes if n.startswith(f"layers.{i}.")] for i in range(self.params.n_layers)]
        return [["tok_embeddings.weight"], *layers, ["norm.weight", "output.weight"]]

    def read_slices(self, names: Sequence[str]) -> Iterator[tuple[str, list[torch.Tensor]]]:
        """Yield each named tensor's model-parallel slices (memory-mapped); the mappings close after the group."""
        states = [load_shard(path) for path in self.shard_paths]
        try:
            for name in names:
                yield name, [state[name] for state in states]
        finally:
            del states

    def read(self, names: Sequence[str]) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield each named tensor merged from its model-parallel slices."""
        import torch

        for name, slices in self.read_slices(names):
            axis = shard_axis(name)
            yield name, slices[0] if axis is None or len(slices) == 1 else torch.cat(slices, dim=axis)

    def verify_checksums(self) -> int:
        """Compare every file listed in `checklist.chk` with its md5; returns how many were checked (0: no list)."""
        checklist = self.directory / "checklist.chk"
        if not checklist.is_file():
            return 0
        entries = [line.split() for line in checklist.read_text(encoding="utf-8").splitlines() if line.strip()]
        for entry in entries:
            if len(entry) != 2:
                raise ConversionError(f"{checklist}: expected lines of 'md5 filename'; found {' '.join(entry)!r}")
            expected, name = entry
            path = self.directory / name
            if not path.is_file():
                raise ConversionError(f"{path}: listed in checklist.chk but missing")
            with path.open("rb") as file:
                found = hashlib.file_digest(file, "md5").hexdigest()
            if found != expected.lower():
                raise ConversionError(f"{path}: md5 {found} does not match checklist.chk ({expected})")
        return len(entries)


class _Entry(NamedTuple):
    """What the scan keeps of one tensor in one shard."""

    shape: tuple[int, ...]
    dtype: str
    value: bytes | None  # replicated tensors only (the norms): their bytes must agree across shards
    record: TensorRecord


# Per shard, in shard order: tensor name -> its entry.
_Scan = list[dict[str, _Entry]]


def _scan(shard_paths: list[Path]) -> _Scan:
    """Shape, dtype (and, for replicated tensors, the value) of every tensor in every shard."""
    scan: _Scan = []
    for path in shard_paths:
        entries = {}
        records = read_pth(path)
        with open(path, "rb") as file:
            for name, record in records.items():
                if name in DROPPED_TENSORS:
                    continue
                try:
                    axis = shard_axis(name)
                except ConversionError as error:
                    raise ConversionError(f"{path}: {error}") from None
                if record.dtype not in FLOATING_DTYPES:
                    raise ConversionError(
                        f"{path}: tensor {name} has dtype torch.{record.dtype}; expected a floating dtype"
                    )
                # Replicated tensors are norms (dim floats): cheap to compare for shards that disagree.
                value = record.read_bytes(file) if axis is None else None
                entries[name] = _Entry(record.shape, record.dtype, value, record)
        scan.append(entries)
    return scan


def _vocab_size(params: MetaParams, params_path: Path, tokenizer_path: Path, scan: _Scan, shard0: Path) -> int:
    if "tok_embeddings.weight" not in scan[0]:
        raise ConversionError(f"{shard0}: tensor tok_embeddings.weight is missing")
    rows = scan[0]["tok_embeddings.weight"].shape[0]
    if params.vocab_size is not None and params.vocab_size != rows:
        raise ConversionError(
            f"{params_path}: vocab_size is {params.vocab_size} but tok_embeddings.weight in "
            f"{shard0.name} has {rows} rows"
        )
    try:
        pieces = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_path)).vocab_size()
    except (RuntimeError, OSError) as error:
        raise ConversionError(f"{tokenizer_path}: not a readable SentencePiece model ({_first_line(error)})") from None
    if pieces != rows:
        raise ConversionError(f"{tokenizer_path}: has {pieces} pieces but tok_embeddings.weight has {rows} rows")
    return rows


def _check_shapes(shard_paths: list[Path], scan: _Scan, shapes: dict[str, tuple[int, ...]], params_path: Path) -> None:
    first, count = shard_paths[0], len(shard_paths)
    # The embedding is split along dim, so its slice width says how many shards Meta wrote.
    width = scan[0]["tok_embeddings.weight"].shape[1]
    dim = shapes["norm.weight"][0]
    implied = dim // width if width and dim % width == 0 else None
    if implied != count:
        hint = f"{shard_paths[-1].name} is extra" if implied and count > implied else "a shard is missing or foreign"
        raise ConversionError(
            f"{first}: tok_embeddings.weight slice is {width} wide, so with dim={dim} there should "
            f"be {implied or 'a whole number of'} shards; found {count} ({hint})"
        )
    expected_names = set(shapes)
    for path, entries in zip(shard_paths, scan, strict=True):
        if missing := sorted(expected_names - entries.keys()):
            raise ConversionError(f"{path}: tensor {missing[0]} is missing ({len(missing)} missing in all)")
        if extra := sorted(entries.keys() - expected_names):
            raise ConversionError(
                f"{path}: unexpected tensor {extra[0]}, not in the layout {params_path.name} describes "
                f"({len(extra)} unexpected in all)"
            )
    for name, full in shapes.items():
        axis = shard_axis(name)
        expected = list(full)
        if axis is not None:
            expected[axis] //= count
        for path, entries in zip(shard_paths, scan, strict=True):
            shape, dtype, value, _ = entries[name]
            if list(shape) != expected:
                merged = f" (merged over {count} shards: {_shape(full)})" if axis is not None and count > 1 else ""
                raise ConversionError(
                    f"{path}: tensor {name} has shape {_shape(shape)}; {params_path.name} implies "
                    f"{_shape(expected)}{merged}"
                )
            reference = scan[0][name]
            if dtype != reference.dtype:
                raise ConversionError(
                    f"{path}: tensor {name} has dtype torch.{dtype}; {first.name} has torch.{reference.dtype}"
                )
            if value is not None and reference.value is not None and value != reference.value:
                raise ConversionError(f"{path}: replicated tensor {name} differs from the one in {first.name}")


__all__ = ["MetaCheckpoint", "find_shards", "load_shard"]
