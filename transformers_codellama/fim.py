"""Moved to `transformers_codellama.training.fim`; this name keeps existing imports working."""

from .training.fim import (
    DEFAULT_SEED,
    PLAIN,
    PSM,
    SPM,
    FimSplit,
    draw_split,
    fim_example,
    fim_examples,
    fim_layouts,
    fim_map_function,
)

__all__ = [
    "DEFAULT_SEED",
    "PLAIN",
    "PSM",
    "SPM",
    "FimSplit",
    "draw_split",
    "fim_example",
    "fim_examples",
    "fim_layouts",
    "fim_map_function",
]
