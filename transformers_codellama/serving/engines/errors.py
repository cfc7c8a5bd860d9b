"""What an engine raises: a full queue, a request it refuses (naming the request's field), a request that failed.

Every engine raises these, so the adapters turn each into the client's protocol shape the same way (`Generation`).
"""

from __future__ import annotations


class EngineBusy(RuntimeError):
    """The engine's queue of waiting requests is full; try again later."""


class EngineError(RuntimeError):
    """A request failed inside the engine (raised from its stream's iterator); other requests go on."""


class InvalidRequest(ValueError):
    """A request the engine refuses before it starts, in one line.

    Args:
        field: The `EngineRequest` field at fault, dotted into `sampling` (`max_new_tokens`, `sampling.top_p`); the
            adapters name the client's own field for it (`Fields.engine_field`).
        message: What is wrong, naming the value and what is expected.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


__all__ = ["EngineBusy", "EngineError", "InvalidRequest"]
