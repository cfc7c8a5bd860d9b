"""Console-script entry points that start without importing torch or transformers.

Importing any module inside `transformers_codellama` runs the package's `__init__` first, and that registers Code
Llama with the transformers Auto classes, which imports torch and transformers' model code: seconds and hundreds
of MB before a command has parsed its arguments. The console scripts that may only print their help or an argument
error start here instead: they import the package with registration deferred, and the command registers (or imports
what it needs) once it has real work to do. This module is outside the package so that importing it runs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

_deferring = False


def registration_deferred() -> bool:
    """True while an entry point here imports the package: `transformers_codellama/__init__.py` then skips `register()`."""
    return _deferring


@contextmanager
def _deferred_registration() -> Iterator[None]:
    global _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = False


def convert(argv: Sequence[str] | None = None) -> int:
    """`codellama-convert`: parse the arguments before importing torch, transformers or the converter."""
    with _deferred_registration():
        from transformers_codellama.conversion.convert_codellama_weights_to_hf import main
    return main(argv)


__all__ = ["convert", "registration_deferred"]
