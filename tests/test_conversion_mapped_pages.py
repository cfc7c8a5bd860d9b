"""Releasing the pages of memory-mapped shards: memory goes back, data stays, and only file mappings are touched."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest
import torch

from transformers_codellama.conversion.mapped_pages import MappedPages, file_mappings
from transformers_codellama.conversion.meta_checkpoint import load_shard

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pages are released on Linux only")
MIB = 2**20


@pytest.fixture()
def shard(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    state = {f"t{i}": torch.randn(4 * MIB // 4, generator=generator).view(1024, 1024) for i in range(16)}  # 64 MiB
    torch.save(state, tmp_path / "consolidated.00.pth")
    return tmp_path / "consolidated.00.pth", state


def _rss() -> int:
    return psutil.Process().memory_info().rss


def test_released_pages_leave_resident_memory_and_the_data_intact(shard) -> None:
    path, expected = shard
    state = load_shard(path)
    pages = MappedPages()
    assert file_mappings(path) and pages.register(path, state.values())
    checksum = sum(float(t.sum()) for t in state.values())  # reads every page
    touched = _rss()
    for tensor in state.values():
        pages.release(tensor)
    assert touched - _rss() >= 48 * MIB  # most of the 64 MiB read is no longer resident
    assert all(torch.equal(state[name], expected[name]) for name in expected)  # read again from the file
    assert sum(float(t.sum()) for t in state.values()) == checksum
    pages.clear()


def test_memory_not_in_a_registered_file_mapping_is_never_released(shard) -> None:
    path, _ = shard
    state = load_shard(path)
    pages = MappedPages()
    assert pages.register(path, state.values())
    anonymous = torch.arange(2 * MIB, dtype=torch.float32)  # 8 MiB in ordinary memory
    pages.release(anonymous)
    assert torch.equal(anonymous, torch.arange(2 * MIB, dtype=torch.float32))
    assert not pages.register(path, [anonymous])  # not part of the file: refused
    pages.clear()
