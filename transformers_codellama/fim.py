"""Moved to `transformers_codellama.training.fim`; this name keeps existing imports working."""

from .training.fim import (
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
