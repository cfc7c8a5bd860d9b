"""Unit tests of the converter's pure pieces, and the real sizes' key and shape maps on the meta device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from transformers_codellama.conversion.convert import build_config
from transformers_codellama.conversion.errors import ConversionError
from transformers_codellama.conversion.mapping import (
    MetaParams,
    config_kwargs,
    ffn_hidden_size,
    hf_name,
    infer_variant,
    max_context,
    meta_shapes,
    parse_params,
    permute_rotary,
    shard_axis,
)
from transformers_codellama.conversion.meta_checkpoint import MetaCheckpoint

# params.json of Meta's releases (70B: base; Python/Instruct differ only in rope_theta).
REAL_PARAMS = {
    "7B": {"dim": 4096, "n_layers": 32, "n_heads": 32, "multiple_of": 256, "ffn_dim_multiplier": None, "norm_eps": 1e-5, "rope_theta": 1e6, "vocab_size": 32016},
    "13B": {"dim": 5120, "n_layers": 40, "n_heads": 40, "multiple_of": 256, "norm_eps": 1e-5, "rope_theta": 1e6, "vocab_size": 32016},
    "34B": {"dim": 8192, "n_layers": 48, "n_heads": 64, "n_kv_heads": 8, "multiple_of": 256, "ffn_dim_multiplier": 1.0, "norm_eps": 1e-5, "rope_theta": 1e6, "vocab_size": -1},
    "70B": {"dim": 8192, "n_layers": 80, "n_heads": 64, "n_kv_heads": 8, "multiple_of": 4096, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-5, "rope_theta": 1e6},
}  # fmt: skip
REAL_VOCAB = {"7B": 32016, "13B": 32016, "34B": 32000, "70B": 32016}
REAL_FFN = {"7B": 11008, "13B": 13824, "34B": 22016, "70B": 28672}
REAL_SHARDS = {"7B": 1, "13B": 2, "34B": 4, "70B": 8}


@pytest.mark.parametrize(
    ("meta", "hf"),
    [
        ("tok_embeddings.weight", "model.embed_tokens.weight"),
        ("norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        ("layers.0.attention.wq.weight", "model.layers.0.self_attn.q_proj.weight"),
        ("layers.7.attention.wk.weight", "model.layers.7.self_attn.k_proj.weight"),
        ("layers.12.attention.wv.weight", "model.layers.12.self_attn.v_proj.weight"),
        ("layers.79.attention.wo.weight", "model.layers.79.self_attn.o_proj.weight"),
        ("layers.3.feed_forward.w1.weight", "model.layers.3.mlp.gate_proj.weight"),
        ("layers.3.feed_forward.w2.weight", "model.layers.3.mlp.down_proj.weight"),
        ("layers.3.feed_forward.w3.weight", "model.layers.3.mlp.up_proj.weight"),
        ("layers.5.attention_norm.weight", "model.layers.5.input_layernorm.weight"),
        ("layers.5.ffn_norm.weight", "model.layers.5.post_attention_layernorm.weight"),
        ("rope.freqs", None),
    ],
)
def test_hf_name(meta: str, hf: str | None) -> None:
    assert hf_name(meta) == hf


@pytest.mark.parametrize(
    "name", ["layers.0.attention.wz.weight", "embeddings.weight", "layers.x.ffn_norm.weight", "output"]
)
def test_unknown_names_are_errors(name: str) -> None:
    with pytest.raises(ConversionError, match="unknown tensor name"):
        hf_name(name)


@pytest.mark.parametrize(
    ("name", "axis"),
    [
        *((f"layers.1.attention.{w}.weight", 0) for w in ("wq", "wk", "wv")),
        *((f"layers.1.feed_forward.{w}.weight", 0) for w in ("w1", "w3")),
        ("output.weight", 0),
        ("layers.1.attention.wo.weight", 1),
        ("layers.1.feed_forward.w2.weight", 1),
        ("tok_embeddings.weight", 1),
        ("layers.1.attention_norm.weight", None),
        ("layers.1.ffn_norm.weight", None),
        ("norm.weight", None),
    ],
)
def test_shard_axis_by_role(name: str, axis: int | None) -> None:
    assert shard_axis(name) == axis


def test_permute_rotary_turns_meta_interleaved_rotation_into_hf_half_rotation() -> None:
    heads, head_dim, dim, seq = 3, 8, 24, 5
    weight = torch.randn(heads * head_dim, dim, dtype=torch.float64)
    x = torch.randn(seq, dim, dtype=torch.float64)
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * 1e4 ** (-torch.arange(0, head_dim, 2) / head_dim)
    # Meta: complex multiplication of interleaved pairs.
    meta = torch.view_as_complex((x @ weight.T).view(seq, heads, head_dim // 2, 2).contiguous())
    meta = torch.view_as_real(meta * torch.polar(torch.ones_like(angles), angles)[:, None]).flatten(-2)
    # HF: rotate_half on the permuted projection, heads first.
    hf = (x @ permute_rotary(weight, heads).T).view(1, seq, heads, head_dim).transpose(1, 2)
    cos = torch.cat((angles, angles), dim=-1).cos()[None]
    sin = torch.cat((angles, angles), dim=-1).sin()[None]
    hf, _ = apply_rotary_pos_emb(hf, hf, cos, sin)
    # HF keeps the pairs' first halves first: Meta channel 2j is HF channel j, channel 2j+1 is HF channel head_dim/2 + j.
    order = torch.arange(head_dim).view(2, head_dim // 2).T.reshape(-1)
    assert torch.allclose(hf[0].transpose(0, 1)[..., order], meta, atol=1e-12)


def test_permute_rotary_is_a_row_permutation() -> None:
    weight = torch.arange(16 * 3, dtype=torch.float32).view(16, 3)
    permuted = permute_rotary(weight, 2)
    assert permuted[:, 0].tolist() == [0, 6, 12, 18, 3, 9, 15, 21, 24, 30, 36, 42, 27, 33, 39, 45]


@pytest.mark.parametrize("size", REAL_FFN)
def test_ffn_hidden_size_of_every_real_size(size: str) -> None:
    p = REAL_PARAMS[size]
    assert ffn_hidden_size(p["dim"], p["multiple_of"], p.get("ffn_dim_multiplier")) == REAL_FFN[size]
    assert parse_params(p).hidden_dim == REAL_FFN[size]


def test_parse_params_defaults_for_absent_or_null_keys() -> None:
    params = parse_params(
        {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": None, "ffn_dim_multiplier": None, "vocab_size": -1}
    )
    assert params == MetaParams(dim=64, n_layers=2, n_heads=4, n_kv_heads=4, multiple_of=256, ffn_dim_multiplier=None, norm_eps=1e-5, rope_theta=10000.0, vocab_size=None)  # fmt: skip
    assert parse_params({"dim": 64, "n_layers": 2, "n_heads": 4}).vocab_size is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"n_layers": 2, "n_heads": 4}, "required key 'dim'"),
        ({"dim": "64", "n_layers": 2, "n_heads": 4}, "dim must be a positive int; found '64'"),
        ({"dim": 64, "n_layers": 2, "n_heads": 5}, "n_heads=5"),
        ({"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 3}, "not a multiple of n_kv_heads=3"),
        ({"dim": 64, "n_layers": 2, "n_heads": 4, "norm_eps": -1}, "norm_eps must be a positive float"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_parse_params_errors_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(ConversionError, match=r"params\.json") as caught:
        parse_params(raw)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_params_to_config_kwargs() -> None:
    params = parse_params(REAL_PARAMS["34B"])
    kwargs = config_kwargs(params, vocab_size=32000, max_position_embeddings=16384, dtype=torch.bfloat16)
    assert kwargs["hidden_size"] == 8192 and kwargs["num_hidden_layers"] == 48
    assert kwargs["num_attention_heads"] == 64 and kwargs["num_key_value_heads"] == 8
    assert kwargs["intermediate_size"] == 22016 and kwargs["head_dim"] == 128
    assert kwargs["rope_parameters"] == {"rope_type": "default", "rope_theta": 1e6}
    assert kwargs["rms_norm_eps"] == 1e-5 and kwargs["dtype"] == "bfloat16" and kwargs["vocab_size"] == 32000


@pytest.mark.parametrize(
    ("name", "variant"),
    [("CodeLlama-7b", "base"), ("CodeLlama-13b-Instruct", "instruct"), ("CodeLlama-34b-Python", "python"),
     ("codellama_70b_python_hf", "python"), ("checkpoint", "base"), ("CodeLlama-7b-Python-Instruct", None)],
)  # fmt: skip
def test_infer_variant(name: str, variant: str | None) -> None:
    assert infer_variant(name) == variant


def test_max_context_is_4096_only_for_70b_python_and_instruct() -> None:
    assert [max_context("70B", v) for v in ("base", "python", "instruct")] == [16384, 4096, 4096]
    assert {max_context(s, v) for s in ("7B", "13B", "34B", "custom") for v in ("base", "python", "instruct")} == {
        16384
    }


@pytest.mark.parametrize("size", REAL_PARAMS)
@pytest.mark.parametrize("output_format", ["codellama", "llama"])
def test_real_sizes_key_and_shape_map_on_meta_device(size: str, output_format: str) -> None:
    params = parse_params(REAL_PARAMS[size])
    assert params.model_size == size
    vocab = REAL_VOCAB[size]
    # The checkpoint as `MetaCheckpoint.open` would describe the release (its shards are not here to open).
    checkpoint = MetaCheckpoint(Path(size), params, [], Path("tokenizer.model"), vocab, "bfloat16", shapes={})
    config = build_config(checkpoint, variant="base", output_format=output_format, supports_infilling=vocab == 32016,
                          dtype=torch.bfloat16)  # fmt: skip
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    converted = {hf_name(name): shape for name, shape in meta_shapes(params, vocab).items()}
    assert converted == expected
    # Every split tensor divides evenly over Meta's model-parallel shards; wk/wv keep whole kv heads per shard.
    shards = REAL_SHARDS[size]
    for name, shape in meta_shapes(params, vocab).items():
        axis = shard_axis(name)
        if axis is not None:
            assert shape[axis] % shards == 0, name
    assert (params.n_kv_heads * params.head_dim // shards) % params.head_dim == 0
