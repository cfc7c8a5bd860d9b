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

from transformers_codellama import CodeLlamaConfig, CodeLlamaForCausalLM, CodeLlamaTokenizerFast
from transformers_codellama.chat import chat_template_for
from transformers_codellama.modeling_code_llama import generation_config_for

# Meta's SentencePiece models live beside the clone (never copied into the repository).
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CODELLAMA_MODEL = DATA / "codellama.model"  # 32016 pieces, with infilling
LLAMA2_MODEL = DATA / "llama2.model"  # 32000 pieces, no infilling (34B, Python)

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


class MetaReference:
    """Meta's prompt layouts and decoding, written against SentencePiece directly."""

    def __init__(self, vocab_file: Path = CODELLAMA_MODEL) -> None:
        self.sp = spm.SentencePieceProcessor(model_file=str(vocab_file))
        self.bos, self.eos = self.sp.bos_id(), self.sp.eos_id()
        self.pre, self.suf, self.mid, self.eot = (
            self.sp.piece_to_id(p) for p in ("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>")
        )
        self.smiley = self.sp.piece_to_id("☺")

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def encode_nolead(self, text: str) -> list[int]:
        # Meta: encode "☺" + text and drop the two tokens of "☺" (the dummy-prefix space and the smiley).
        return self.sp.encode("☺" + text)[2:]

    def completion_ids(self, prompt: str) -> list[int]:
        return [self.bos, *self.encode(prompt)]

    def infilling_ids(self, prefix: str, suffix: str, *, suffix_first: bool = False) -> list[int]:
        if suffix_first:
            return [self.bos, self.pre, self.suf, *self.encode_nolead(suffix), self.mid, *self.encode(prefix)]
        return [self.bos, self.pre, *self.encode(prefix), self.suf, *self.encode_nolead(suffix), self.mid]

    def chat_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Llama 2 `[INST]` format (7B/13B/34B Instruct), from REFERENCE.md."""
        turns = [dict(message) for message in messages]
        if turns[0]["role"] == "system":
            system = turns.pop(0)["content"]
            turns[0]["content"] = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + turns[0]["content"]
        ids: list[int] = []
        for user, answer in zip(turns[::2], turns[1::2]):
            text = "[INST] " + user["content"].strip() + " [/INST] " + answer["content"].strip() + " "
            ids += [self.bos, *self.encode(text), self.eos]
        return [*ids, self.bos, *self.encode("[INST] " + turns[-1]["content"].strip() + " [/INST]")]

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode(list(ids))

    def decode_infilling(self, ids: Sequence[int]) -> str:
        return self.sp.decode([self.smiley, *ids])[1:]


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
