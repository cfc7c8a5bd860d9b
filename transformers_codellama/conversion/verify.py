"""`--verify`: the converted checkpoint against an independent forward of Meta's original shards.

The reference forward is written from the architecture as Meta's `llama/model.py` defines it (interleaved complex
rotary, RMSNorm in float32, grouped-query attention by repeating kv heads); the other side runs the converted
safetensors through the Hugging Face decoder layers. Both run in float32 and one layer at a time, loading only that
layer's weights, so even 70B fits in memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import sentencepiece
import torch
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

from ..modeling_code_llama import CodeLlamaForCausalLM
from .errors import ConversionError
from .mapping import MetaParams
from .meta_checkpoint import MetaCheckpoint

PROMPTS = (
    "def fibonacci(n: int) -> int:\n",
    "import numpy as np\n\nclass Matrix:\n    def __init__(self, rows):",
    "// Sort the array in place\nvoid sort(int *a, int n) {",
)
# Relative to the largest reference logit: float32 on both sides differs only in rounding and operation order.
DEFAULT_TOLERANCE = 1e-3


def prompt_tokens(tokenizer_model: Path) -> list[torch.Tensor]:
    """The verification prompts as SentencePiece ids with BOS, each of shape (1, length)."""
    processor = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model))
    return [torch.tensor([[processor.bos_id(), *processor.encode(text)]]) for text in PROMPTS]


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rotate(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    # Meta's apply_rotary_emb: consecutive channel pairs are complex numbers, multiplied by e^{i * angle}.
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(pairs * freqs_cis[:, None, :]).flatten(-2)


def _meta_block(h: torch.Tensor, w: dict[str, torch.Tensor], p: MetaParams, freqs_cis: torch.Tensor) -> torch.Tensor:
    seq = h.shape[1]
    x = _rms_norm(h, w["attention_norm.weight"], p.norm_eps)
    q = _rotate((x @ w["attention.wq.weight"].T).view(1, seq, p.n_heads, p.head_dim), freqs_cis)
    k = _rotate((x @ w["attention.wk.weight"].T).view(1, seq, p.n_kv_heads, p.head_dim), freqs_cis)
    v = (x @ w["attention.wv.weight"].T).view(1, seq, p.n_kv_heads, p.head_dim)
    repeats = p.n_heads // p.n_kv_heads
    k, v = (t.repeat_interleave(repeats, dim=2) for t in (k, v))
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(2, 3) / p.head_dim**0.5
    scores = scores + torch.full((seq, seq), float("-inf")).triu(1)
    attention = (torch.softmax(scores.float(), dim=-1) @ v).transpose(1, 2).reshape(1, seq, -1)
    h = h + attention @ w["attention.wo.weight"].T
    x = _rms_norm(h, w["ffn_norm.weight"], p.norm_eps)
    gate = torch.nn.functional.silu(x @ w["feed_forward.w1.weight"].T)
    return h + (gate * (x @ w["feed_forward.w3.weight"].T)) @ w["feed_forward.w2.weight"].T


def meta_logits(checkpoint: MetaCheckpoint, prompts: list[torch.Tensor]) -> list[torch.Tensor]:
    """Float32 logits of Meta's architecture on the original shards, one layer in memory at a time."""
    p, groups = checkpoint.params, checkpoint.groups()
    weights = dict(checkpoint.read(groups[0]))
    hidden = [weights["tok_embeddings.weight"][tokens].float() for tokens in prompts]
    half = torch.arange(0, p.head_dim, 2)[: p.head_dim // 2].float() / p.head_dim
    freqs = 1.0 / (p.rope_theta**half)
    freqs_cis = [
        torch.polar(torch.ones(t.shape[1], len(freqs)), torch.outer(torch.arange(t.shape[1]).float(), freqs))
        for t in prompts
    ]
    for names in groups[1:-1]:
        layer = {name.split(".", 2)[2]: tensor.float() for name, tensor in checkpoint.read(names)}
        hidden = [_meta_block(h, layer, p, f) for h, f in zip(hidden, freqs_cis, strict=True)]
    weights = {name: tensor.float() for name, tensor in checkpoint.read(groups[-1])}
    return [_rms_norm(h, weights["norm.weight"], p.norm_eps) @ weights["output.weight"].T for h in hidden]


def _safetensors_reader(output_dir: Path) -> Callable[[str], Iterator[tuple[str, torch.Tensor]]]:
    index = output_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
    else:
        with safe_open(str(output_dir / "model.safetensors"), framework="pt") as reader:
            weight_map = dict.fromkeys(reader.keys(), "model.safetensors")

    def read(prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
        for file in sorted({file for name, file in weight_map.items() if name.startswith(prefix)}):
            with safe_open(str(output_dir / file), framework="pt") as reader:
                for name in reader.keys():  # noqa: SIM118
                    if name.startswith(prefix):
                        yield name.removeprefix(prefix), reader.get_tensor(name).float()

    return read


def _model_class(config: LlamaConfig) -> type[PreTrainedModel]:
    """The class users load the checkpoint with: stock Llama for `--format llama`, else the plugin's."""
    return LlamaForCausalLM if config.model_type == "llama" else CodeLlamaForCausalLM


def converted_logits(output_dir: Path, config: LlamaConfig, prompts: list[torch.Tensor]) -> list[torch.Tensor]:
    """Float32 logits of the converted safetensors through the Hugging Face layers, one layer at a time."""
    config._attn_implementation = "sdpa"  # with no mask, sdpa is causal: no mask-building machinery needed
    with torch.device("meta"):
        model = _model_class(config)(config).float()
    read = _safetensors_reader(output_dir)
    embed = dict(read("model.embed_tokens."))["weight"]
    hidden = [embed[tokens] for tokens in prompts]
    rotary = type(model.model.rotary_emb)(config)  # built outside the meta context: real inv_freq
    positions = [torch.arange(t.shape[1])[None] for t in prompts]
    rotations = [rotary(h, pos) for h, pos in zip(hidden, positions, strict=True)]
    for index, layer in enumerate(model.model.layers):
        layer.load_state_dict(dict(read(f"model.layers.{index}.")), strict=True, assign=True)
        with torch.no_grad():
            hidden = [
                layer(h, position_ids=pos, position_embeddings=rot)
                for h, pos, rot in zip(hidden, positions, rotations, strict=True)
            ]
        layer.to("meta")  # release this layer's weights
    model.model.norm.load_state_dict(dict(read("model.norm.")), strict=True, assign=True)
    model.lm_head.load_state_dict(dict(read("lm_head.")), strict=True, assign=True)
    with torch.no_grad():
        return [model.lm_head(model.model.norm(h)) for h in hidden]


def verify_conversion(
    checkpoint: MetaCheckpoint, output_dir: Path, config: LlamaConfig, *, tolerance: float = DEFAULT_TOLERANCE
) -> float:
    """Largest absolute logit difference between the two forwards; ConversionError above the tolerance."""
    prompts = prompt_tokens(checkpoint.tokenizer_path)
    with torch.no_grad():
        reference = meta_logits(checkpoint, prompts)
    converted = converted_logits(output_dir, config, prompts)
    difference = max(float((a - b).abs().max()) for a, b in zip(reference, converted, strict=True))
    scale = max(1.0, *(float(r.abs().max()) for r in reference))
    if not difference <= tolerance * scale:  # also catches NaN
        raise ConversionError(
            f"{output_dir}: converted logits differ from Meta's forward by {difference:.3g} "
            f"(tolerance {tolerance * scale:.3g}) on {len(prompts)} prompts"
        )
    return difference


__all__ = ["DEFAULT_TOLERANCE", "PROMPTS", "converted_logits", "meta_logits", "prompt_tokens", "verify_conversion"]
