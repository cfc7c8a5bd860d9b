"""Real code that every machine with Python has: the standard library's own sources.

The tiny tokenizer is trained on it, and the tests and benchmarks measure on it. Files come in sorted order, so every
run on one Python version sees the same code.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_paths(*, recursive: bool = True) -> list[Path]:
    """The standard library's `.py` files, sorted; `recursive=False` gives only the top-level modules (no packages,
    no tests)."""
    return sorted(STDLIB.rglob("*.py") if recursive else STDLIB.glob("*.py"))


def iter_stdlib_sources(*, recursive: bool = True) -> Iterator[str]:
    """The text of each of `stdlib_paths(recursive=...)`, skipping files that are not UTF-8."""
    for path in stdlib_paths(recursive=recursive):
        try:
            yield path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def stdlib_sources(*, max_files: int | None = None, max_bytes: int | None = None, recursive: bool = True) -> list[str]:
    """Standard-library sources, whole files in sorted order, stopping after `max_files` files or once their UTF-8
    size reaches `max_bytes` (whichever comes first; no limit when both are None)."""
    texts: list[str] = []
    size = 0
    for text in iter_stdlib_sources(recursive=recursive):
        if max_files is not None and len(texts) >= max_files:
            break
        texts.append(text)
        size += len(text.encode("utf-8"))
        if max_bytes is not None and size >= max_bytes:
            break
    return texts


__all__ = ["STDLIB", "iter_stdlib_sources", "stdlib_paths", "stdlib_sources"]
