"""Moved to `transformers_codellama.training.fim_collator`; this name keeps existing imports working."""

from .training.fim_collator import IGNORE_INDEX, FimDataCollator

__all__ = ["IGNORE_INDEX", "FimDataCollator"]
