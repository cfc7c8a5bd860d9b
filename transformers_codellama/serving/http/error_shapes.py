"""Which protocol's error shape a request path answers in: the shape of the adapter that serves it, or whose prefix
holds it (`/v1/...` answers unknown paths in OpenAI's shape), else the default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .errors import ErrorShape


class ShapedRoutes(Protocol):
    """What `ErrorShapes` reads of a protocol adapter (`adapters.base.Adapter`)."""

    @property
    def errors(self) -> ErrorShape: ...

    @property
    def paths(self) -> set[str]: ...

    @property
    def paths_under(self) -> tuple[str, ...]: ...


class ErrorShapes:
    """The error shape of each request path: the shape of the adapter that serves it or whose prefix holds it."""

    def __init__(self, adapters: Sequence[ShapedRoutes], default: ErrorShape) -> None:
        self._exact = {path: adapter.errors for adapter in adapters for path in adapter.paths}
        self._prefixes = [(prefix, adapter.errors) for adapter in adapters for prefix in adapter.paths_under]
        self._default = default

    def __call__(self, path: str) -> ErrorShape:
        if path in self._exact:
            return self._exact[path]
        return next((shape for prefix, shape in self._prefixes if path.startswith(prefix)), self._default)


__all__ = ["ErrorShapes", "ShapedRoutes"]
