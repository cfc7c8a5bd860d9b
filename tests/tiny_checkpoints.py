"""Tiny Code Llama checkpoints for tests, and the independent references they are checked against.

The references never touch the package's tokenizers or pipeline: prompts are laid out with SentencePiece itself
(as Meta's `llama/tokenizer.py` does) and generation is a plain greedy loop over the model's logits (as Meta's
`llama/generation.py` does, without a KV cache).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import sentencepiece as spm
import torch
from meta_tokenizer import MetaTokenizer
from real_data import CODELLAMA_MODEL

from transformers_codellama import CodeLlamaConfig, CodeLlamaForCausalLM, CodeLlamaTokenizerFast
from transformers_codellama.chat import chat_template_for
from transformers_codellama.stopping import generation_config_for

TINY_SIZES = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


def tiny_config(*, vocab_size: int = 32016, num_key_value_heads: int = 4, **fields: object) -> CodeLlamaConfig:
    """A 2-layer, 64-wide Code Llama configuration."""
    return CodeLlamaConfig(vocab_size=vocab_size, num_key_value_heads=num_key_value_heads, **TINY_SIZES, **fields)


def random_model(config: CodeLlamaConfig, *, seed: int = 0) -> CodeLlamaForCausalLM:
    """A randomly initialised model (float32, eval mode), reproducible from `seed`."""
    torch.manual_seed(seed)
    return CodeLlamaForCausalLM(config).eval()


def transition_model(config: CodeLlamaConfig, transitions: Mapping[int, int]) -> CodeLlamaForCausalLM:
    """A model whose greedy next token depends only on the current one: `transitions[token]`.

    Attention and MLP outputs are zeroed (so every layer is the identity through its residual), each source token
    embeds as its own basis vector, and the head row of its target reads that vector: after `t` the argmax is
    `transitions[t]`, whatever came before. Chains such as `MID -> a -> b -> EOT` make stopping deterministic.
    """
    if len(transitions) > config.hidden_size:
        raise ValueError(f"at most {config.hidden_size} transitions fit a {config.hidden_size}-wide model")
    model = random_model(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not name.endswith("norm.weight"):
                parameter.zero_()
        for axis, (source, target) in enumerate(transitions.items()):
            model.model.embed_tokens.weight[source, axis] = 1.0
            model.lm_head.weight[target, axis] = 1.0
    return model


def chain(*tokens: int) -> dict[int, int]:
    """Transitions that walk `tokens` in order."""
    return dict(itertools.pairwise(tokens))


def save_checkpoint(
    directory: Path,
    model: CodeLlamaForCausalLM,
    *,
    vocab_file: Path = CODELLAMA_MODEL,
    chat: bool = False,
) -> Path:
    """Save `model` with a tokenizer built from `vocab_file` and Code Llama's generation config; return `directory`."""
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(vocab_file))
    if chat:
        tokenizer.chat_template = chat_template_for(tokenizer)
    model.generation_config = generation_config_for(model.config, tokenizer)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_checkpoint(
    directory: Path,
    *,
    vocab_file: Path = CODELLAMA_MODEL,
    variant: str = "base",
    num_key_value_heads: int = 2,
    seed: int = 0,
    transitions: Mapping[int, int] | None = None,
) -> Path:
    """A tiny checkpoint (random weights, or a `transition_model`) saved with its tokenizer in `directory`."""
    pieces = spm.SentencePieceProcessor(model_file=str(vocab_file))
    infilling = pieces.piece_to_id("▁<EOT>") != pieces.unk_id()
    config = tiny_config(
        vocab_size=pieces.get_piece_size(),
        num_key_value_heads=num_key_value_heads,
        variant=variant,
        supports_infilling=infilling,
    )
    model = random_model(config, seed=seed) if transitions is None else transition_model(config, transitions)
    return save_checkpoint(directory, model, vocab_file=vocab_file, chat=variant == "instruct")


class MetaReference(MetaTokenizer):
    """Meta's prompt layouts and decoding on SentencePiece directly (tests/meta_tokenizer.py), under short names."""

    def __init__(self, vocab_file: Path = CODELLAMA_MODEL) -> None:
        super().__init__(spm.SentencePieceProcessor(model_file=str(vocab_file)))
        self.bos, self.eos = self.bos_id, self.eos_id
        self.pre, self.suf, self.mid, self.eot = self.prefix_id, self.suffix_id, self.middle_id, self.eot_id

    def completion_ids(self, prompt: str) -> list[int]:
        return self.encode(prompt, bos=True, eos=False)

    def infilling_ids(self, prefix: str, suffix: str, *, suffix_first: bool = False) -> list[int]:
        return self.infilling_prompt(prefix, suffix, suffix_first=suffix_first)

    def chat_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        return self.llama2_chat([dict(message) for message in messages])

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(list(ids))


def greedy(model: torch.nn.Module, prompt: Sequence[int], *, stop: Sequence[int], max_new_tokens: int) -> list[int]:
    """Meta's greedy loop: argmax of the last logits, full forward each step, cut before the first stop token."""
    ids = list(prompt)
    generated: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            if token in stop:
                break
            generated.append(token)
            ids.append(token)
    return generated
