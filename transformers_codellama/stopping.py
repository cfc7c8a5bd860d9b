"""Where Code Llama's generation stops: one rule, by what is being generated, for the pipeline, the generation
config a checkpoint is saved with, and anything else that generates (a server, an evaluation).

Meta's `llama/generation.py` stops completion on `</s>`, an infilled middle on `▁<EOT>` (or `</s>`), and the 70B
Instruct chat on `<step>` (or `</s>`). Ids are looked up on the tokenizer by piece name, never assumed.

This module imports nothing from the package, so the remote-code copy of a checkpoint can carry it, nor transformers'
model code, so the converter can write a checkpoint's generation config without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import GenerationConfig

COMPLETE, INFILL, CHAT = "complete", "infill", "chat"
MODES = (COMPLETE, INFILL, CHAT)


def stop_ids(tokenizer: Any, mode: str) -> list[int]:
    """The ids that end generation in `mode` (`COMPLETE`, `INFILL` or `CHAT`) for `tokenizer`'s vocabulary.

    Raises:
        ValueError: `mode` is not one of `MODES`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    eos = tokenizer.eos_token_id
    candidates = {
        COMPLETE: [eos],
        INFILL: [getattr(tokenizer, "eot_id", None), eos],
        CHAT: [eos, getattr(tokenizer, "step_id", None)],  # <step> ends a 70B Instruct turn
    }[mode]
    return [token for token in dict.fromkeys(candidates) if token is not None]


def until_stop(ids: Sequence[int], stops: Sequence[int]) -> list[int]:
    """`ids` up to (without) the first of `stops`: what Meta decodes of a generated sequence."""
    stop_set = set(stops)
    for position, token in enumerate(ids):
        if token in stop_set:
            return list(ids[:position])
    return list(ids)


def stop_token_ids(config: Any, tokenizer: Any) -> list[int]:
    """The ids on which plain `generate` stops for this checkpoint: those of every mode it can generate in.

    That is `</s>`, `▁<EOT>` where the checkpoint can infill, and `<step>` on 70B Instruct (see `stopping`).
    """
    modes = [COMPLETE, CHAT]
    if getattr(config, "supports_infilling", True) and getattr(tokenizer, "supports_infilling", False):
        modes.insert(1, INFILL)
    return list(dict.fromkeys(token for mode in modes for token in stop_ids(tokenizer, mode)))


def generation_config_for(config: Any, tokenizer: Any) -> GenerationConfig:
    """A `GenerationConfig` for a Code Llama checkpoint: Llama's, stopping on `stop_token_ids(config, tokenizer)`.

    The converter (and anyone building a checkpoint) assigns it to `model.generation_config` before saving, so
    `generation_config.json` makes `model.generate` stop where Meta's decoding does.
    """
    generation_config = GenerationConfig.from_model_config(config)
    stops = stop_token_ids(config, tokenizer)
    generation_config.bos_token_id = tokenizer.bos_token_id
    generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    return generation_config


__all__ = ["CHAT", "COMPLETE", "INFILL", "MODES", "generation_config_for", "stop_ids", "stop_token_ids", "until_stop"]
