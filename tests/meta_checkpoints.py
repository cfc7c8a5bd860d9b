"""Tiny random checkpoints in Meta's layout, and the tests' own Meta-style forward.

The writer splits every tensor along Meta's model-parallel axes (wq wk wv w1 w3 output: rows; wo w2
tok_embeddings: columns; norms copied into every shard). The forward is written from Meta's `llama/model.py`
independently of `transformers_codellama/conversion/verify.py`: rotary here is a real-valued rotation of interleaved channel pairs
(verify.py uses complex numbers), attention is an explicit loop over kv groups, so the two do not share mistakes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from real_data import CODELLAMA_MODEL, LLAMA2_MODEL

from transformers_codellama import TINY_MODEL_PATH

ROW_SPLIT = ("attention.wq", "attention.wk", "attention.wv", "feed_forward.w1", "feed_forward.w3", "output")
COLUMN_SPLIT = ("attention.wo", "feed_forward.w2", "tok_embeddings")


@dataclass
class TinyCodeLlama:
    """The shape of a tiny Code-Llama-like checkpoint; `params_json()` is what Meta would write for it."""

    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: key absent from params.json (= n_heads)
    multiple_of: int = 32
    ffn_dim_multiplier: float | None = None
    rope_theta: float = 1e6
    norm_eps: float = 1e-5
    n_shards: int = 1
    tokenizer: Path = TINY_MODEL_PATH
    vocab_size: int = 1000  # rows of tok_embeddings: must match the tokenizer's pieces
    vocab_in_params: str = "value"  # "value", "absent" or "minus_one"
    rope_freqs: bool = False
    extra_params: dict = field(default_factory=dict)

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def hidden(self) -> int:
        # Meta's FeedForward: 2/3 of 4*dim, times the multiplier, up to a multiple of multiple_of.
        width = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            width = int(self.ffn_dim_multiplier * width)
        return self.multiple_of * ((width + self.multiple_of - 1) // self.multiple_of)

    def params_json(self) -> dict:
        params = {"dim": self.dim, "n_layers": self.n_layers, "n_heads": self.n_heads,
                  "multiple_of": self.multiple_of, "norm_eps": self.norm_eps, "rope_theta": self.rope_theta}  # fmt: skip
        if self.n_kv_heads is not None:
            params["n_kv_heads"] = self.n_kv_heads
        if self.ffn_dim_multiplier is not None:
            params["ffn_dim_multiplier"] = self.ffn_dim_multiplier
        if self.vocab_in_params == "value":
            params["vocab_size"] = self.vocab_size
        elif self.vocab_in_params == "minus_one":
            params["vocab_size"] = -1
        params.update(self.extra_params)
        return params


def random_weights(spec: TinyCodeLlama, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Full (unsharded) bf16 Meta tensors with activations of a sensible scale."""
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int, scale: float) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * scale).to(torch.bfloat16)

    kv = spec.kv_heads * spec.head_dim
    weights = {"tok_embeddings.weight": normal(spec.vocab_size, spec.dim, scale=1.0)}
    for i in range(spec.n_layers):
        prefix = f"layers.{i}."
        weights[prefix + "attention.wq.weight"] = normal(spec.dim, spec.dim, scale=spec.dim**-0.5)
        weights[prefix + "attention.wk.weight"] = normal(kv, spec.dim, scale=spec.dim**-0.5)
        weights[prefix + "attention.wv.weight"] = normal(kv, spec.dim, scale=spec.dim**-0.5)
        weights[prefix + "attention.wo.weight"] = normal(spec.dim, spec.dim, scale=spec.dim**-0.5)
        weights[prefix + "feed_forward.w1.weight"] = normal(spec.hidden, spec.dim, scale=spec.dim**-0.5)
        weights[prefix + "feed_forward.w2.weight"] = normal(spec.dim, spec.hidden, scale=spec.hidden**-0.5)
        weights[prefix + "feed_forward.w3.weight"] = normal(spec.hidden, spec.dim, scale=spec.dim**-0.5)
        weights[prefix + "attention_norm.weight"] = (1 + normal(spec.dim, scale=0.1).float()).bfloat16()
        weights[prefix + "ffn_norm.weight"] = (1 + normal(spec.dim, scale=0.1).float()).bfloat16()
    weights["norm.weight"] = (1 + normal(spec.dim, scale=0.1).float()).bfloat16()
    weights["output.weight"] = normal(spec.vocab_size, spec.dim, scale=spec.dim**-0.5)
    return weights


def split_axis(name: str) -> int | None:
    """Meta's model-parallel axis, written here from the reference table (not imported from the converter)."""
    if any(name.startswith(p) or f".{p}." in name for p in ROW_SPLIT):
        return 0
    if any(name.startswith(p) or f".{p}." in name for p in COLUMN_SPLIT):
        return 1
    return None


def write_meta_checkpoint(directory: Path, spec: TinyCodeLlama, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write `consolidated.NN.pth`, params.json, tokenizer.model and checklist.chk; return the full weights."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = random_weights(spec, seed=seed)
    shards: list[dict[str, torch.Tensor]] = [{} for _ in range(spec.n_shards)]
    for name, tensor in weights.items():
        axis = split_axis(name)
        pieces = [tensor] * spec.n_shards if axis is None else list(tensor.chunk(spec.n_shards, dim=axis))
        for shard, piece in zip(shards, pieces, strict=True):
            shard[name] = piece.clone()  # own storage, as Meta's per-rank files have
    if spec.rope_freqs:
        for shard in shards:
            shard["rope.freqs"] = torch.rand(spec.head_dim // 2)
    for index, shard in enumerate(shards):
        torch.save(shard, directory / f"consolidated.{index:02d}.pth")
    (directory / "params.json").write_text(json.dumps(spec.params_json()))
    shutil.copyfile(spec.tokenizer, directory / "tokenizer.model")
    listed = sorted(p for p in directory.iterdir() if p.suffix in (".pth", ".json", ".model"))
    (directory / "checklist.chk").write_text(
        "".join(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}\n" for p in listed)
    )
    return weights


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * weight


def _rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # (seq, heads, head_dim): channels 2j and 2j+1 form a pair rotated by angle position * theta^(-2j/head_dim).
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


def reference_logits(weights: dict[str, torch.Tensor], spec: TinyCodeLlama, tokens: list[int]) -> torch.Tensor:
    """(len(tokens), vocab) float32 logits of Meta's Llama forward on one unpadded sequence."""
    w = {name: tensor.float() for name, tensor in weights.items()}
    seq, hd, group = len(tokens), spec.head_dim, spec.n_heads // spec.kv_heads
    angles = torch.arange(seq, dtype=torch.float32)[:, None] * spec.rope_theta ** (-torch.arange(0, hd, 2).float() / hd)
    cos, sin = torch.cos(angles)[:, None, :], torch.sin(angles)[:, None, :]
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    h = w["tok_embeddings.weight"][torch.tensor(tokens)]
    for i in range(spec.n_layers):
        p = f"layers.{i}."
        x = _rms(h, w[p + "attention_norm.weight"], spec.norm_eps)
        q = _rotate_pairs((x @ w[p + "attention.wq.weight"].T).view(seq, spec.n_heads, hd), cos, sin)
        k = _rotate_pairs((x @ w[p + "attention.wk.weight"].T).view(seq, spec.kv_heads, hd), cos, sin)
        v = (x @ w[p + "attention.wv.weight"].T).view(seq, spec.kv_heads, hd)
        heads = []
        for head in range(spec.n_heads):
            scores = (q[:, head] @ k[:, head // group].T) / hd**0.5
            heads.append(torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ v[:, head // group])
        h = h + torch.cat(heads, dim=-1) @ w[p + "attention.wo.weight"].T
        x = _rms(h, w[p + "ffn_norm.weight"], spec.norm_eps)
        up = torch.nn.functional.silu(x @ w[p + "feed_forward.w1.weight"].T) * (x @ w[p + "feed_forward.w3.weight"].T)
        h = h + up @ w[p + "feed_forward.w2.weight"].T
    return _rms(h, w["norm.weight"], spec.norm_eps) @ w["output.weight"].T


def reference_greedy(weights: dict[str, torch.Tensor], spec: TinyCodeLlama, tokens: list[int], steps: int) -> list[int]:
    """Greedy continuation (no stop tokens) by rerunning the reference forward."""
    tokens = list(tokens)
    for _ in range(steps):
        tokens.append(int(reference_logits(weights, spec, tokens)[-1].argmax()))
    return tokens


__all__ = [
    "CODELLAMA_MODEL",
    "LLAMA2_MODEL",
    "TinyCodeLlama",
    "random_weights",
    "reference_greedy",
    "reference_logits",
    "write_meta_checkpoint",
]
