"""The `README.md` model card written next to a converted checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

from ..releases import CUSTOM_SIZE

LICENSE_URL = "https://github.com/meta-llama/codellama/blob/main/LICENSE"


@dataclass(frozen=True)
class CardFacts:
    """What the card states about one converted checkpoint."""

    original_name: str  # e.g. "CodeLlama-13b-Instruct"
    model_size: str
    variant: str
    output_format: str
    dtype: str
    vocab_size: int
    context_length: int
    supports_infilling: bool
    converter_version: str
    command: str


def original_name(model_size: str, variant: str, directory_name: str) -> str:
    """Meta's name for the checkpoint (`CodeLlama-34b-Python`); the input directory's name for custom shapes."""
    if model_size == CUSTOM_SIZE:
        return directory_name
    suffix = {"base": "", "python": "-Python", "instruct": "-Instruct"}[variant]
    return f"CodeLlama-{model_size.lower()}{suffix}"


def model_card(facts: CardFacts) -> str:
    """Markdown with the Hub metadata header (license, library, pipeline tag) and how the checkpoint was made."""
    if facts.output_format == "codellama":
        loading = (
            "It loads with `transformers_codellama` installed (`import transformers_codellama`), or without it through "
            "`trust_remote_code=True`, which uses the code files saved here."
        )
    else:
        loading = (
            "It is a plain Llama-architecture checkpoint (`model_type: llama`) that stock transformers, vLLM, TGI and "
            "llama.cpp's converter read. Its tokenizer loads with stock `AutoTokenizer` as a `PreTrainedTokenizerFast` "
            "that gives SentencePiece's ids, so infilling prompts written as `<PRE> {prefix} <SUF>{suffix} <MID>` are "
            "tokenized as Meta's tokenizer tokenizes them."
        )
    infilling = (
        "It supports infilling (fill-in-the-middle); generation stops on `▁<EOT>` as well as `</s>`."
        if facts.supports_infilling
        else "It was not trained for infilling; its tokenizer has no infilling pieces."
    )
    return f"""---
license: llama2
library_name: transformers
pipeline_tag: text-generation
tags:
- code
- llama-2
- codellama
---

# {facts.original_name} (Hugging Face format)

Meta's **{facts.original_name}** ({facts.model_size}, variant `{facts.variant}`) converted from the original
`consolidated.*.pth` shards to safetensors in `{facts.dtype}`, with a {facts.vocab_size}-token vocabulary and a
{facts.context_length}-token context. {infilling}

{loading}

## How it was converted

With `transformers-codellama` {facts.converter_version}:

```
{facts.command}
```

The converter merges Meta's model-parallel slices, reorders the query and key rows from Meta's interleaved rotary
pairs to the Hugging Face layout and drops `rope.freqs`; nothing else changes.

## License

Use of this model is governed by the Llama 2 Community License: {LICENSE_URL}
"""


__all__ = ["CardFacts", "model_card", "original_name"]
