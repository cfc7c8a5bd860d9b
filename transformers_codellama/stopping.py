"""Where Code Llama's generation stops: one rule, by what is being generated, for the pipeline, the generation
config a checkpoint is saved with, and anything else that generates (a server, an evaluation).

Meta's `llama/generation.py` stops completion on `</s>`, an infilled middle on `▁<EOT>` (or `</s>`), and the 70B
Instruct chat on `<step>` (or `</s>`). Ids are looked up on the tokenizer by piece name, never assumed.

This module imports nothing from the package, so the remote-code copy of a checkpoint can carry it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


__all__ = ["CHAT", "COMPLETE", "INFILL", "MODES", "stop_ids", "until_stop"]
