"""The weights are bytes copied in a computed order (kernel copies of file spans, gathered rows): the same bytes as
torch's merge, rotary permutation and cast (`weights_reference`), for every layout the converter sees."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from real_data import CODELLAMA_MODEL
from safetensors.torch import load_file
from weights_reference import write_reference_weights

from transformers_codellama.conversion import weights
from transformers_codellama.conversion.meta_checkpoint import MetaCheckpoint
from transformers_codellama.conversion.writer import FileSpan, ShardWriter, TensorSpec

SPECS = {
    "one shard": TinyCodeLlama(dim=64, n_heads=4, n_shards=1),
    "two shards": TinyCodeLlama(dim=64, n_heads=4, n_shards=2, multiple_of=64, ffn_dim_multiplier=1.3),
    # 8 query heads over 2 key/value heads in 2 shards: each shard holds whole heads of both.
    "grouped query": TinyCodeLlama(dim=128, n_heads=8, n_kv_heads=2, n_shards=2, tokenizer=CODELLAMA_MODEL,
                                   vocab_size=32016),
    # 2 key/value heads over 4 shards: a head of wk straddles two shards.
    "heads straddle shards": TinyCodeLlama(dim=128, n_heads=8, n_kv_heads=2, n_shards=4),
}  # fmt: skip


def _write(checkpoint: MetaCheckpoint, directory: Path, dtype: str, monkeypatch) -> Counter:
    """Write the weights with the converter's `write_weights`; returns how many blocks of each kind it wrote."""
    directory.mkdir()
    kinds: Counter = Counter()
    write = ShardWriter.write

    def counting(self: ShardWriter, name: str, blocks) -> None:
        def seen():  # one at a time: a block of rows is a view into a buffer the next block reuses
            for block in blocks:
                kinds[type(block).__name__] += 1
                yield block

        write(self, name, seen())

    with monkeypatch.context() as patch:
        patch.setattr(ShardWriter, "write", counting)
        patch.setattr(weights, "BLOCK_BYTES", 4000)  # several blocks per tensor
        weights.write_weights(checkpoint, directory, dtype=dtype, max_shard_size=200_000)
    return kinds


def _same_files(written: Path, reference: Path) -> None:
    files = sorted(p.name for p in reference.iterdir())
    assert len(files) > 2  # several shards, so tensors of each kind meet shard boundaries
    assert sorted(p.name for p in written.iterdir()) == files
    for name in files:
        assert (written / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.parametrize("layout", list(SPECS))
def test_kernel_copies_write_the_same_bytes_as_tensors(tmp_path: Path, layout: str, monkeypatch) -> None:
    write_meta_checkpoint(tmp_path / "meta", SPECS[layout])
    checkpoint = MetaCheckpoint.open(tmp_path / "meta")
    write_reference_weights(checkpoint, tmp_path / "tensors", dtype=checkpoint.dtype, max_shard_size=200_000)
    kinds = _write(checkpoint, tmp_path / "bytes", checkpoint.dtype_name, monkeypatch)
    _same_files(tmp_path / "bytes", tmp_path / "tensors")
    assert set(kinds) == {"FileSpan", "list"} and kinds["FileSpan"] and kinds["list"]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("layout", ["two shards", "heads straddle shards"])
def test_another_dtype_is_the_same_bytes_as_torchs_cast(tmp_path: Path, layout: str, dtype: str, monkeypatch) -> None:
    write_meta_checkpoint(tmp_path / "meta", SPECS[layout])
    checkpoint = MetaCheckpoint.open(tmp_path / "meta")
    write_reference_weights(checkpoint, tmp_path / "tensors", dtype=getattr(torch, dtype), max_shard_size=200_000)
    kinds = _write(checkpoint, tmp_path / "bytes", dtype, monkeypatch)
    _same_files(tmp_path / "bytes", tmp_path / "tensors")
    assert set(kinds) == {"list"}  # every block passed through the cast


def test_tensors_stored_with_strides_are_gathered(tmp_path: Path, monkeypatch) -> None:
    # torch.save keeps a tensor's strides: a transposed copy (never in Meta's releases) is stored column-major.
    write_meta_checkpoint(tmp_path / "meta", SPECS["two shards"])
    for path in sorted((tmp_path / "meta").glob("consolidated.*.pth")):
        state = torch.load(path, weights_only=True)
        for name in ("layers.0.attention.wq.weight", "layers.0.attention.wo.weight", "layers.1.feed_forward.w2.weight"):
            state[name] = state[name].t().contiguous().t()  # same values, not contiguous
            assert not state[name].is_contiguous()
        torch.save(state, path)
    checkpoint = MetaCheckpoint.open(tmp_path / "meta")
    write_reference_weights(checkpoint, tmp_path / "tensors", dtype=checkpoint.dtype, max_shard_size=200_000)
    _write(checkpoint, tmp_path / "bytes", checkpoint.dtype_name, monkeypatch)
    _same_files(tmp_path / "bytes", tmp_path / "tensors")


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
