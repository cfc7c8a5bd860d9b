"""Tensors whose bytes need no change are copied by the kernel (file spans, gathered rows): the same bytes as the
tensor path (torch.cat and the rotary permutation, then one write per block), for every layout the converter sees."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from real_data import CODELLAMA_MODEL
from safetensors.torch import load_file

from transformers_codellama.conversion import convert
from transformers_codellama.conversion.mapping import hf_name, rotary_heads, shard_axis
from transformers_codellama.conversion.meta_checkpoint import MetaCheckpoint
from transformers_codellama.conversion.writer import FileSpan, ShardWriter, TensorSpec

SPECS = {
    "one shard": TinyCodeLlama(dim=64, n_heads=4, n_shards=1),
    "two shards": TinyCodeLlama(dim=64, n_heads=4, n_shards=2, multiple_of=64, ffn_dim_multiplier=1.3),
    # 8 query heads over 2 key/value heads in 2 shards: each shard holds whole heads of both.
    "grouped query": TinyCodeLlama(dim=128, n_heads=8, n_kv_heads=2, n_shards=2, tokenizer=CODELLAMA_MODEL,
                                   vocab_size=32016),
    # 2 key/value heads over 4 shards: heads straddle shards, so wk takes the tensor path.
    "heads straddle shards": TinyCodeLlama(dim=128, n_heads=8, n_kv_heads=2, n_shards=4),
}  # fmt: skip


def _write(checkpoint: MetaCheckpoint, directory: Path, path: str) -> Counter:
    """Write every tensor with `path` ("tensors", "gathered" or "kernel"); returns how many blocks of each kind."""
    directory.mkdir()
    names = {name: hf_name(name) for name in checkpoint.shapes}
    specs = [TensorSpec(str(names[n]), shape, checkpoint.dtype) for n, shape in checkpoint.shapes.items()]
    writer, kinds = ShardWriter(directory, specs, max_shard_size=200_000), Counter()
    for group in checkpoint.groups():
        for name, slices in checkpoint.read_slices(group):
            layout = {"axis": shard_axis(name), "heads": rotary_heads(name, checkpoint.params)}
            blocks = None
            if path != "tensors":
                locate = checkpoint.locate if path == "kernel" else None
                blocks = convert.row_buffers(slices, **layout, release=checkpoint.release_pages, locate=locate)
            if blocks is None:
                blocks = convert.row_blocks(slices, **layout, dtype=checkpoint.dtype, release=checkpoint.release_pages)
            seen = list(blocks)
            kinds.update(type(block).__name__ for block in seen)
            writer.write(str(names[name]), iter(seen))
    return Counter(kinds)


@pytest.mark.parametrize("layout", list(SPECS))
def test_kernel_copies_write_the_same_bytes_as_tensors(tmp_path: Path, layout: str) -> None:
    spec = SPECS[layout]
    write_meta_checkpoint(tmp_path / "meta", spec)
    checkpoint = MetaCheckpoint.open(tmp_path / "meta")
    written = {path: _write(checkpoint, tmp_path / path, path) for path in ("tensors", "gathered", "kernel")}
    files = sorted(p.name for p in (tmp_path / "tensors").iterdir())
    assert len(files) > 2  # several shards, so tensors of each kind meet shard boundaries
    for path in ("gathered", "kernel"):
        assert sorted(p.name for p in (tmp_path / path).iterdir()) == files
        for name in files:
            assert (tmp_path / path / name).read_bytes() == (tmp_path / "tensors" / name).read_bytes(), (path, name)
    assert set(written["tensors"]) == {"Tensor"}
    assert written["gathered"]["list"] and "FileSpan" not in written["gathered"]
    if sys.platform.startswith("linux"):  # where the mapped shards can be located in their files
        assert written["kernel"]["FileSpan"] and written["kernel"]["list"]
    assert bool(written["gathered"]["Tensor"]) == (layout == "heads straddle shards")


def test_file_spans_and_gathered_rows_round_trip_through_safetensors(tmp_path: Path) -> None:
    data = torch.randn(100, 40, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    raw = data.view(torch.uint8).numpy()  # (100, 80) bytes
    prefix = b"x" * 12  # the span starts at an offset that is not a multiple of anything
    (tmp_path / "source.bin").write_bytes(prefix + raw.tobytes())
    span = FileSpan(tmp_path / "source.bin", len(prefix) + 10 * 80, raw[10:60].reshape(-1).data)
    reversed_rows = [raw[row].data for row in range(99, 59, -1)]
    specs = [TensorSpec("span", (50, 40), torch.bfloat16), TensorSpec("rows", (40, 40), torch.bfloat16)]
    writer = ShardWriter(tmp_path, specs, max_shard_size=10**6)
    writer.write("span", [span])
    writer.write("rows", [reversed_rows[:7], reversed_rows[7:]])
    writer.finish()
    loaded = load_file(tmp_path / "model.safetensors")
    assert torch.equal(loaded["span"], data[10:60]) and torch.equal(loaded["rows"], data[60:].flip(0))


def test_gathered_bytes_must_be_whole_rows(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, [TensorSpec("w", (4, 2), torch.bfloat16)], max_shard_size=100)
    with pytest.raises(RuntimeError, match="not whole rows"):
        writer.write("w", [[memoryview(bytes(6))]])
