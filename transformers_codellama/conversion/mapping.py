"""Pure facts about Meta's Code Llama layout: names, split axes, rotary permutation, params.json, sizes.

Nothing here reads files; every function is a small pure function with a unit test.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..releases import CUSTOM_SIZE, SHARDS_PER_SIZE, VARIANTS
from .errors import ConversionError

if TYPE_CHECKING:  # torch is not imported at run time: the weights can be copied without it
    import torch

# (dim, n_layers) -> released size.
KNOWN_SIZES: dict[tuple[int, int], str] = {(4096, 32): "7B", (5120, 40): "13B", (8192, 48): "34B", (8192, 80): "70B"}

# Meta name (per layer, after "layers.N.") -> (HF name after "model.layers.N.", model-parallel split axis or None).
LAYER_TENSORS: dict[str, tuple[str, int | None]] = {
    "attention.wq.weight": ("self_attn.q_proj.weight", 0),
    "attention.wk.weight": ("self_attn.k_proj.weight", 0),
    "attention.wv.weight": ("self_attn.v_proj.weight", 0),
    "attention.wo.weight": ("self_attn.o_proj.weight", 1),
    "feed_forward.w1.weight": ("mlp.gate_proj.weight", 0),
    "feed_forward.w2.weight": ("mlp.down_proj.weight", 1),
    "feed_forward.w3.weight": ("mlp.up_proj.weight", 0),
    "attention_norm.weight": ("input_layernorm.weight", None),
    "ffn_norm.weight": ("post_attention_layernorm.weight", None),
}
GLOBAL_TENSORS: dict[str, tuple[str, int | None]] = {
    "tok_embeddings.weight": ("model.embed_tokens.weight", 1),
    "norm.weight": ("model.norm.weight", None),
    "output.weight": ("lm_head.weight", 0),
}
# Precomputed rotary frequencies some checkpoints carry; the model recomputes them from rope_theta.
DROPPED_TENSORS = frozenset({"rope.freqs"})
_LAYER_NAME = re.compile(r"layers\.(\d+)\.(.+)")


def _role(meta_name: str) -> tuple[str, int | None]:
    """(HF name, split axis) of a Meta tensor name; raises ConversionError for an unknown name."""
    if meta_name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[meta_name]
    match = _LAYER_NAME.fullmatch(meta_name)
    if match and match.group(2) in LAYER_TENSORS:
        hf_suffix, axis = LAYER_TENSORS[match.group(2)]
        return f"model.layers.{int(match.group(1))}.{hf_suffix}", axis
    raise ConversionError(f"unknown tensor name {meta_name!r} (not part of Meta's Llama layout)")


def hf_name(meta_name: str) -> str | None:
    """The Hugging Face name of a Meta tensor, or None for a tensor the converter drops (`rope.freqs`)."""
    return None if meta_name in DROPPED_TENSORS else _role(meta_name)[0]


def shard_axis(meta_name: str) -> int | None:
    """The axis along which Meta's model-parallel shards split the tensor, or None where every shard holds it all."""
    return None if meta_name in DROPPED_TENSORS else _role(meta_name)[1]


def permute_rotary(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder the rows of a query/key projection from Meta's interleaved rotary pairs to HF's rotated halves.

    Meta rotates channel pairs (0, 1), (2, 3), ... of each head; HF rotates channel i with i + head_dim/2. Moving
    every head's even rows first and odd rows second makes HF's rotation compute exactly Meta's.
    """
    rows, cols = weight.shape
    return weight.view(n_heads, rows // n_heads // 2, 2, cols).transpose(1, 2).reshape(rows, cols)


def rotary_row_order(rows: int, n_heads: int) -> list[int]:
    """`permute_rotary` as row indices: output row i is input row `order[i]` (no tensor, no torch)."""
    half = rows // n_heads // 2
    return [head * 2 * half + 2 * i + pair for head in range(n_heads) for pair in (0, 1) for i in range(half)]


def unpermute_rotary(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """The inverse of `permute_rotary`: Hugging Face's rotated-halves rows back to Meta's interleaved pairs."""
    rows, cols = weight.shape
    return weight.view(n_heads, 2, rows // n_heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def split_for_shards(meta_name: str, tensor: torch.Tensor, shards: int) -> list[torch.Tensor]:
    """The inverse of merging: `tensor` cut into Meta's `shards` model-parallel slices (or copied, if replicated)."""
    axis = shard_axis(meta_name)
    if axis is None:
        return [tensor] * shards
    if tensor.shape[axis] % shards:
        raise ConversionError(f"{meta_name}: {tensor.shape[axis]} rows or columns do not split into {shards} shards")
    return [piece.contiguous() for piece in tensor.chunk(shards, dim=axis)]


def ffn_hidden_size(dim: int, multiple_of: int, ffn_dim_multiplier: float | None = None) -> int:
    """Meta's FFN width: two thirds of 4*dim, scaled by `ffn_dim_multiplier`, rounded up to `multiple_of`."""
    hidden = int(2 * 4 * dim / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * -(-hidden // multiple_of)  # integer ceiling, as Meta's code computes it


@dataclass(frozen=True)
class MetaParams:
    """The architecture described by a Meta `params.json`, with Meta's defaults for absent keys."""

    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    multiple_of: int
    ffn_dim_multiplier: float | None
    norm_eps: float
    rope_theta: float
    vocab_size: int | None  # None: absent or -1 in params.json, taken from the tokenizer and tok_embeddings

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        return ffn_hidden_size(self.dim, self.multiple_of, self.ffn_dim_multiplier)

    @property
    def model_size(self) -> str:
        """ "7B", "13B", "34B" or "70B" for the released shapes, else "custom"."""
        return KNOWN_SIZES.get((self.dim, self.n_layers), CUSTOM_SIZE)


def _field(raw: Mapping[str, Any], key: str, kind: type, source: str, default: Any = ...) -> Any:
    value = raw.get(key)
    if value is None:
        if default is ...:
            raise ConversionError(f"{source}: required key {key!r} is missing")
        return default
    # JSON integers are valid floats; bools are not numbers here.
    valid = isinstance(value, kind) or (kind is float and isinstance(value, int))
    if not valid or isinstance(value, bool) or (kind is int and value <= 0) or (kind is float and value <= 0):
        raise ConversionError(f"{source}: {key} must be a positive {kind.__name__}; found {value!r}")
    return kind(value)


def parse_params(raw: Mapping[str, Any], *, source: str = "params.json") -> MetaParams:
    """Validate a parsed `params.json` and fill Meta's defaults (`n_kv_heads` = `n_heads`, `rope_theta` = 1e4)."""
    if not isinstance(raw, Mapping):
        raise ConversionError(f"{source}: expected a JSON object; found {type(raw).__name__}")
    n_heads = _field(raw, "n_heads", int, source)
    vocab = raw.get("vocab_size")
    params = MetaParams(
        dim=_field(raw, "dim", int, source),
        n_layers=_field(raw, "n_layers", int, source),
        n_heads=n_heads,
        n_kv_heads=_field(raw, "n_kv_heads", int, source, n_heads),
        multiple_of=_field(raw, "multiple_of", int, source, 256),
        ffn_dim_multiplier=_field(raw, "ffn_dim_multiplier", float, source, None),
        norm_eps=_field(raw, "norm_eps", float, source, 1e-5),
        rope_theta=_field(raw, "rope_theta", float, source, 10000.0),
        vocab_size=None if vocab in (None, -1) else _field(raw, "vocab_size", int, source),
    )
    if params.dim % params.n_heads or params.head_dim % 2:
        raise ConversionError(f"{source}: dim={params.dim} must split into n_heads={n_heads} heads of even size")
    if params.n_heads % params.n_kv_heads:
        raise ConversionError(f"{source}: n_heads={n_heads} is not a multiple of n_kv_heads={params.n_kv_heads}")
    return params


def params_json(params: MetaParams) -> dict[str, Any]:
    """The `params.json` object Meta writes for `params` (the inverse of `parse_params`)."""
    return {
        "dim": params.dim,
        "n_layers": params.n_layers,
        "n_heads": params.n_heads,
        "n_kv_heads": params.n_kv_heads,
        "multiple_of": params.multiple_of,
        "ffn_dim_multiplier": params.ffn_dim_multiplier,
        "norm_eps": params.norm_eps,
        "rope_theta": params.rope_theta,
        "vocab_size": -1 if params.vocab_size is None else params.vocab_size,
    }


def meta_shapes(params: MetaParams, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """The full (unsharded) shape of every Meta tensor, in the order the converter writes them."""
    dim, hidden, kv_dim = params.dim, params.hidden_dim, params.n_kv_heads * params.head_dim
    per_layer = {
        "attention.wq.weight": (dim, dim),
        "attention.wk.weight": (kv_dim, dim),
        "attention.wv.weight": (kv_dim, dim),
        "attention.wo.weight": (dim, dim),
        "feed_forward.w1.weight": (hidden, dim),
        "feed_forward.w2.weight": (dim, hidden),
        "feed_forward.w3.weight": (hidden, dim),
        "attention_norm.weight": (dim,),
        "ffn_norm.weight": (dim,),
    }
    shapes: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (vocab_size, dim)}
    for layer in range(params.n_layers):
        shapes.update({f"layers.{layer}.{name}": shape for name, shape in per_layer.items()})
    shapes.update({"norm.weight": (dim,), "output.weight": (vocab_size, dim)})
    return shapes


def rotary_heads(meta_name: str, params: MetaParams) -> int | None:
    """The head count to permute `meta_name` with (wq: n_heads, wk: n_kv_heads), or None if it is not permuted."""
    if meta_name.endswith("attention.wq.weight"):
        return params.n_heads
    if meta_name.endswith("attention.wk.weight"):
        return params.n_kv_heads
    return None


def infer_variant(directory_name: str) -> str | None:
    """The variant a directory name such as `CodeLlama-13b-Instruct` implies ("base" if it names none), or None if
    it names both Python and Instruct."""
    words = set(re.split(r"[^a-z0-9]+", directory_name.lower()))
    found = [variant for variant in VARIANTS if variant != "base" and variant in words]
    return found[0] if len(found) == 1 else ("base" if not found else None)


def max_context(model_size: str, variant: str) -> int:
    """Context length: 16384 for every Code Llama except 70B-Python and 70B-Instruct (4096), as Meta released them."""
    return 4096 if model_size == "70B" and variant in ("python", "instruct") else 16384


def config_kwargs(
    params: MetaParams, *, vocab_size: int, max_position_embeddings: int, dtype: torch.dtype
) -> dict[str, Any]:
    """LlamaConfig keyword arguments for the architecture in `params` (Code Llama's own fields are added by the caller)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": params.dim,
        "intermediate_size": params.hidden_dim,
        "num_hidden_layers": params.n_layers,
        "num_attention_heads": params.n_heads,
        "num_key_value_heads": params.n_kv_heads,
        "head_dim": params.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": params.norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": params.rope_theta},
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": None,
        "dtype": str(dtype).removeprefix("torch."),
    }


__all__ = [
    "CUSTOM_SIZE",
    "DROPPED_TENSORS",
    "KNOWN_SIZES",
    "SHARDS_PER_SIZE",
    "VARIANTS",
    "MetaParams",
    "config_kwargs",
    "ffn_hidden_size",
    "hf_name",
    "infer_variant",
    "max_context",
    "meta_shapes",
    "params_json",
    "parse_params",
    "permute_rotary",
    "rotary_heads",
    "shard_axis",
    "split_for_shards",
    "unpermute_rotary",
]
