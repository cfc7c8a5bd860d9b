"""Moved to `transformers_codellama.training.fim`; this name keeps existing imports working."""

# The old module gives the same objects as the new one: its public names, listed once, in the new module.
from .training.fim import *  # noqa: F403
from .training.fim import __all__  # noqa: F401
