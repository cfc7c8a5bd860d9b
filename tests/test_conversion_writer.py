"""The streaming safetensors writer and the all-or-nothing output directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from transformers_codellama.conversion.errors import ConversionError
from transformers_codellama.conversion.writer import ShardWriter, TensorSpec, parse_size, plan_shards, staged_output


@pytest.mark.parametrize(
    ("text", "size"),
    [("5GB", 5 * 10**9), ("500MB", 5 * 10**8), ("2GiB", 2 * 2**30), ("1.5KB", 1500), (1024, 1024), ("7", 7)],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "5 GBs", "-1GB", "0", "lots"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ConversionError, match="max shard size"):
        parse_size(text)


def test_plan_shards_packs_in_order_and_isolates_large_tensors() -> None:
    specs = [TensorSpec(f"t{i}", (n,), torch.float32) for i, n in enumerate([10, 10, 30, 5, 5])]
    plan = plan_shards(specs, max_shard_size=80)
    assert [[s.name for s in shard] for shard in plan] == [["t0", "t1"], ["t2"], ["t3", "t4"]]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("max_shard_size", [10**9, 700])
def test_shard_writer_round_trips_through_safetensors(tmp_path: Path, dtype: torch.dtype, max_shard_size: int) -> None:
    tensors = {f"model.layers.{i}.w": torch.randn(7 + i, 13).to(dtype) for i in range(5)}
    tensors["lm_head.weight"] = torch.randn(3, 5).to(dtype).T  # not contiguous: the writer packs it
    writer = ShardWriter(
        tmp_path, [TensorSpec(k, tuple(v.shape), v.dtype) for k, v in tensors.items()], max_shard_size=max_shard_size
    )
    for index, (name, tensor) in enumerate(tensors.items()):
        writer.write(name, [tensor] if index % 2 else tensor.split(3))  # whole, or in blocks of rows
    files = writer.finish()
    loaded: dict[str, torch.Tensor] = {}
    for file in files:
        loaded.update(load_file(tmp_path / file))
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)
    if len(files) > 1:
        index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"].values()) == set(files)
        assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
        assert files[0] == f"model-00001-of-{len(files):05d}.safetensors"
    else:
        assert files == ["model.safetensors"]


def test_shard_writer_refuses_unplanned_tensors(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, [TensorSpec("a", (2,), torch.float32)], max_shard_size=100)
    with pytest.raises(RuntimeError, match="expected a next; got b"):
        writer.write("b", [torch.zeros(2)])
    writer = ShardWriter(tmp_path, [TensorSpec("a", (4, 2), torch.float32)], max_shard_size=100)
    with pytest.raises(RuntimeError, match="got 3 rows"):
        writer.write("a", [torch.zeros(3, 2)])


def test_staged_output_moves_into_place_only_when_complete(tmp_path: Path) -> None:
    output = tmp_path / "out"
    with pytest.raises(KeyError), staged_output(output, force=False) as staging:
        (staging / "config.json").write_text("{}")
        raise KeyError("interrupted")
    assert not output.exists() and list(tmp_path.iterdir()) == []
    with staged_output(output, force=False) as staging:
        (staging / "config.json").write_text("{}")
        assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (output / "config.json").is_file()


def test_staged_output_refuses_non_empty_without_force_and_replaces_with_force(tmp_path: Path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "mine.txt").write_text("keep")
    with pytest.raises(ConversionError, match="not empty"), staged_output(output, force=False):
        pass
    assert [p.name for p in output.iterdir()] == ["mine.txt"]
    with staged_output(output, force=True) as staging:
        (staging / "config.json").write_text("{}")
    assert [p.name for p in output.iterdir()] == ["config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_staging_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = tmp_path / f".out.partial-{dead.stdout.strip()}"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"partial")
    alive = tmp_path / f".out.partial-{os.getppid()}"  # a running process's staging is left alone
    alive.mkdir()
    with staged_output(tmp_path / "out", force=False) as staging:
        (staging / "config.json").write_text("{}")
    assert not stale.exists() and alive.exists()
