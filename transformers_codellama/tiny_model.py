"""Moved to `transformers_codellama.training.tiny_model`; this name keeps existing imports and
`python -m transformers_codellama.tiny_model` working."""

# The old module gives the same objects as the new one: its public names, listed once, in the new module.
from .training.tiny_model import *  # noqa: F403
from .training.tiny_model import __all__, main  # noqa: F401

if __name__ == "__main__":
    main()
