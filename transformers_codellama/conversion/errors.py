"""The one exception the converter raises for bad input."""

from __future__ import annotations


class ConversionError(ValueError):
    """Bad input or output location: a one-line message naming the file, the field and what is wrong.

    The command line prints it as `error: <message>` and exits with status 1, without a traceback.
    """


__all__ = ["ConversionError"]
