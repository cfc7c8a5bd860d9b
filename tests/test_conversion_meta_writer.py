"""The converter run backwards (`meta_writer`): its shards against the tests' own Meta tables and forward, and the
round trip through the real converter."""

from __future__ import annotations

import pytest
import torch
from meta_checkpoints import TinyCodeLlama, reference_logits, split_axis
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM

from transformers_codellama import TINY_MODEL_PATH
from transformers_codellama.conversion.convert import convert
from transformers_codellama.conversion.mapping import (
    config_kwargs,
    meta_shapes,
    params_json,
    parse_params,
    permute_rotary,
    split_for_shards,
    unpermute_rotary,
)
from transformers_codellama.conversion.meta_writer import RandomWeights, write_meta_checkpoint

SPEC = TinyCodeLlama(dim=64, n_heads=8, n_kv_heads=2, multiple_of=32, ffn_dim_multiplier=1.3, rope_theta=1e6)
VOCAB = 1000  # the package's tiny tokenizer


@pytest.mark.parametrize(("rows", "heads"), [(64, 8), (16, 2), (128, 1)])
def test_unpermute_rotary_inverts_permute_rotary(rows: int, heads: int) -> None:
    weight = torch.randn(rows, 24)
    assert torch.equal(unpermute_rotary(permute_rotary(weight, heads), heads), weight)
    assert torch.equal(permute_rotary(unpermute_rotary(weight, heads), heads), weight)


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_split_for_shards_follows_the_tests_own_split_table(shards: int) -> None:
    params = parse_params(SPEC.params_json())
    for name, shape in meta_shapes(params, VOCAB).items():
        tensor = torch.randn(shape)
        pieces = split_for_shards(name, tensor, shards)
        axis = split_axis(name)
        expected = [tensor] * shards if axis is None else list(tensor.chunk(shards, dim=axis))
        assert len(pieces) == shards
        assert all(torch.equal(a, b) for a, b in zip(pieces, expected, strict=True)), name
        merged = pieces[0] if axis is None else torch.cat(pieces, dim=axis)
        assert torch.equal(merged, tensor)


def test_params_json_is_the_inverse_of_parse_params() -> None:
    for raw in (SPEC.params_json(), {"dim": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8, "vocab_size": -1}):
        params = parse_params(raw)
        assert parse_params(params_json(params)) == params
    assert params_json(parse_params({"dim": 64, "n_layers": 1, "n_heads": 4}))["vocab_size"] == -1


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    params = parse_params(SPEC.params_json())
    weights = dict(RandomWeights(params, VOCAB, seed=3, dtype=torch.float32))
    directory = write_meta_checkpoint(
        tmp_path_factory.mktemp("meta") / "CodeLlama-7b", params, weights, tokenizer_model=TINY_MODEL_PATH, shards=2
    )
    return params, weights, directory


def test_written_shards_run_in_the_tests_meta_forward_as_the_weights_run_in_llama(written) -> None:
    params, weights, directory = written
    shards = [torch.load(directory / f"consolidated.0{i}.pth", weights_only=True) for i in range(2)]
    assert sorted(shards[0]) == sorted(meta_shapes(params, VOCAB))
    meta = {}
    for name in shards[0]:  # merged with the tests' own table, not the converter's
        axis = split_axis(name)
        meta[name] = shards[0][name] if axis is None else torch.cat([s[name] for s in shards], dim=axis)
    config = LlamaConfig(**config_kwargs(params, vocab_size=VOCAB, max_position_embeddings=64, dtype=torch.float32))
    model = LlamaForCausalLM(config).eval()
    model.load_state_dict(weights, strict=True)
    tokens = [1, 17, 300, 42, 999, 5, 7]
    with torch.no_grad():
        found = model(torch.tensor([tokens])).logits[0]
    assert (found - reference_logits(meta, SPEC, tokens)).abs().max() <= 1e-4
    assert (directory / "tokenizer.model").read_bytes() == TINY_MODEL_PATH.read_bytes()


def test_converting_the_written_checkpoint_gives_back_the_weights(written, tmp_path) -> None:
    _, weights, directory = written
    convert(input_dir=directory, output_dir=tmp_path / "hf", max_shard_size="100KB")
    found = {}
    for file in (tmp_path / "hf").glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as reader:
            found |= {name: reader.get_tensor(name) for name in reader.keys()}  # noqa: SIM118
    assert sorted(found) == sorted(weights)
    assert all(torch.equal(found[name], weights[name]) for name in weights)
