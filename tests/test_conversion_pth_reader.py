"""The torch-free reader of `torch.save` files: the same names, dtypes, shapes, strides and bytes as `torch.load`,
and a pickle that names anything but a tensor's parts is refused before anything it names is called."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint

from transformers_codellama.conversion.errors import ConversionError
from transformers_codellama.conversion.pth_reader import read_pth


def _assert_same_as_torch(path: Path) -> None:
    expected = torch.load(path, map_location="cpu", weights_only=True)
    found = read_pth(path)
    assert list(found) == list(expected)
    with open(path, "rb") as file:
        for name, tensor in expected.items():
            record = found[name]
            assert f"torch.{record.dtype}" == str(tensor.dtype) and record.itemsize == tensor.element_size(), name
            assert record.shape == tuple(tensor.shape) and record.stride == tensor.stride(), name
            assert record.storage_offset == tensor.storage_offset(), name
            assert record.is_contiguous == tensor.is_contiguous(), name
            # The bytes at the recorded place are the tensor's, in row-major order.
            assert record.read_bytes(file) == tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes(), name


def test_records_match_torch_load_for_dtypes_views_and_shared_storage(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(24, 20, generator=generator)
    half = base.half()
    state = {
        "bf16": base.to(torch.bfloat16),
        "f16 rows": half[3:9],  # shares its storage with "f16 all", at an offset
        "f16 all": half,
        "f32 columns": base[:, 5:11],  # offset and gaps between rows
        "f32 transposed": base.t(),
        "f64 column": base.double()[:, 7],  # a vector with a stride
        "every other row": base.to(torch.bfloat16)[::2],
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "int": torch.arange(10),
    }
    torch.save(state, tmp_path / "views.pth")
    _assert_same_as_torch(tmp_path / "views.pth")


@pytest.mark.parametrize("shards", [1, 2])
def test_records_match_torch_load_on_meta_shards(tmp_path: Path, shards: int) -> None:
    spec = TinyCodeLlama(dim=64, n_heads=4, n_shards=shards, rope_freqs=True)  # rope.freqs: float32 beside bf16
    write_meta_checkpoint(tmp_path, spec)
    for path in sorted(tmp_path.glob("consolidated.*.pth")):
        _assert_same_as_torch(path)


class _MakesDirectory:
    """Unpickling this calls os.mkdir(path): the test checks the directory never appears."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.path),))


class _Evaluates:
    def __reduce__(self) -> tuple:
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", ["mkdir", "eval"])
def test_foreign_globals_are_refused_before_they_are_called(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "created"
    objects = {"mkdir": _MakesDirectory(marker), "eval": _Evaluates()}
    state = {"tok_embeddings.weight": torch.zeros(4, 4, dtype=torch.bfloat16), "payload": objects[payload]}
    torch.save(state, tmp_path / "consolidated.00.pth")
    with pytest.raises(ConversionError, match="refused, the pickle holds code or objects") as raised:
        read_pth(tmp_path / "consolidated.00.pth")
    assert {"mkdir": "posix.mkdir", "eval": "builtin__.eval"}[payload] in str(raised.value)  # protocol 2 names
    assert str(tmp_path / "consolidated.00.pth") in str(raised.value) and "\n" not in str(raised.value)
    assert not marker.exists()


def test_a_state_dict_of_something_else_is_refused(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(2), "n": 3}, tmp_path / "mixed.pth")
    with pytest.raises(ConversionError, match="expected a dict of tensor names to tensors"):
        read_pth(tmp_path / "mixed.pth")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_files_are_named_as_corrupt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "consolidated.00.pth"
    torch.save({"w": torch.randn(256, 256).to(torch.bfloat16)}, path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(os.urandom(4096))
    with pytest.raises(ConversionError, match="truncated or corrupt shard") as raised:
        read_pth(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)
