"""Writing a checkpoint in Meta's layout: the converter run backwards, built from the same tables in `mapping`.

`write_meta_checkpoint` takes weights as a converted checkpoint holds them (Hugging Face names, rotary rows in
Hugging Face's order), un-permutes the query and key rows, splits every tensor along Meta's model-parallel axis and
saves `consolidated.NN.pth`, `params.json` and `tokenizer.model`. The demo and the converter benchmark use it to make
checkpoints to convert; converting its output gives back the weights it was given.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import sentencepiece
import torch

from .errors import ConversionError
from .mapping import MetaParams, hf_name, meta_shapes, params_json, rotary_heads, split_for_shards, unpermute_rotary


def write_meta_checkpoint(
    directory: str | Path,
    params: MetaParams,
    weights: Mapping[str, torch.Tensor],
    *,
    tokenizer_model: str | Path,
    shards: int = 1,
) -> Path:
    """Write `weights` (Hugging Face names and layout) into `directory` as Meta's `shards`-way checkpoint.

    Every tensor `params` implies must be in `weights`, with its full (merged) shape; each is read once, so
    `weights` may be a mapping that makes its tensors on demand. Returns `directory`.
    """
    directory = Path(directory)
    vocab_size = weights["model.embed_tokens.weight"].shape[0]
    directory.mkdir(parents=True, exist_ok=True)
    parts: list[dict[str, torch.Tensor]] = [{} for _ in range(shards)]
    # Each slice waits for its shard's torch.save in a file of its own (torch.save writes a view's whole storage,
    # so slices must own their bytes anyway): memory holds one tensor at a time, not the whole checkpoint.
    with tempfile.TemporaryDirectory(dir=directory, prefix=".slices-") as scratch:
        for meta_name, shape in meta_shapes(params, vocab_size).items():
            tensor = weights[str(hf_name(meta_name))]
            if tuple(tensor.shape) != shape:
                raise ConversionError(f"{hf_name(meta_name)}: shape {tuple(tensor.shape)}; params imply {shape}")
            heads = rotary_heads(meta_name, params)
            if heads is not None:
                tensor = unpermute_rotary(tensor, heads)
            for index, piece in enumerate(split_for_shards(meta_name, tensor, shards)):
                path = Path(scratch) / f"{index}.{meta_name}"
                parts[index][meta_name] = torch.from_file(
                    str(path), shared=True, size=piece.numel(), dtype=piece.dtype
                ).view(piece.shape)
                parts[index][meta_name].copy_(piece)
            del tensor
        for index, part in enumerate(parts):
            torch.save(part, directory / f"consolidated.{index:02d}.pth")
            part.clear()
    (directory / "params.json").write_text(json.dumps(params_json(params), indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(tokenizer_model, directory / "tokenizer.model")
    return directory


class RandomWeights(Mapping[str, torch.Tensor]):
    """Random weights for `params`, made on demand (one tensor in memory at a time): norms near 1, matrices scaled
    by 1/sqrt(columns), the same values for the same seed."""

    def __init__(self, params: MetaParams, vocab_size: int, *, seed: int = 0, dtype: torch.dtype = torch.bfloat16):
        self._shapes = {str(hf_name(name)): shape for name, shape in meta_shapes(params, vocab_size).items()}
        self._seeds = {name: seed * 100_003 + index for index, name in enumerate(self._shapes)}
        self.dtype = dtype

    def __getitem__(self, name: str) -> torch.Tensor:
        shape = self._shapes[name]
        generator = torch.Generator().manual_seed(self._seeds[name])
        values = torch.randn(shape, generator=generator)
        values = 1 + 0.1 * values if len(shape) == 1 else values / shape[-1] ** 0.5
        return values.to(self.dtype)

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)


def write_random_meta_checkpoint(
    directory: str | Path,
    params: MetaParams,
    *,
    tokenizer_model: str | Path,
    shards: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
) -> Path:
    """A checkpoint in Meta's layout with random weights shaped by `params` and the vocabulary of `tokenizer_model`."""
    vocab_size = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model)).get_piece_size()
    weights = RandomWeights(params, vocab_size, seed=seed, dtype=dtype)
    return write_meta_checkpoint(directory, params, weights, tokenizer_model=tokenizer_model, shards=shards)


__all__ = ["RandomWeights", "write_meta_checkpoint", "write_random_meta_checkpoint"]
