"""The server's defaults that more than one part reads (the command line, the app, the engines, the Ray deployment).

Plain values with no imports, so `codellama-serve --help` shows them without loading torch or the web framework.
"""

from __future__ import annotations

DEFAULT_MAX_TOKENS_CAP = 2048  # the most tokens one choice may generate
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # the largest request body accepted
DEFAULT_MAX_CHOICES = 8  # the most choices one request may ask for
# Tokens of prompt state an engine keeps for the next prompts to reuse: up to 8 GiB for a 7B model in bfloat16.
DEFAULT_PREFIX_CACHE_TOKENS = 16384
DEFAULT_MAX_QUEUE = 256  # requests waiting for a slot before the server answers 503

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CHOICES",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_TOKENS_CAP",
    "DEFAULT_PREFIX_CACHE_TOKENS",
]
