"""Moved to `transformers_codellama.training.fim_collator`; this name keeps existing imports working."""

# The old module gives the same objects as the new one: its public names, listed once, in the new module.
from .training.fim_collator import *  # noqa: F403
from .training.fim_collator import __all__  # noqa: F401
