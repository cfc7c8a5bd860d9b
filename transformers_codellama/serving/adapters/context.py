"""What every endpoint shares: the server's settings, its engine and tokenizer, and the per-request helpers.

`Server` is what the app puts on `app.state.server` and every adapter reads with `server_of(request)`: the engine
(any `engine_api.Engine`), the tokenizer, what the model can do, and the settings. The app and the adapters both
import this module; it imports neither.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fastapi import Request

from ..engines.base import Engine, ModelFacts, Tokenizer
from ..http.errors import Fields, ServingError
from ..http.settings import ServerSettings
from .generation import ChoiceRequest, Generation, run_all, start_all


@dataclass
class Server:
    """What the endpoints share: the engine, the tokenizer, the model's facts, the settings (`server_of`)."""

    engine: Engine
    tokenizer: Tokenizer
    model: ModelFacts
    settings: ServerSettings
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def max_context(self) -> int:
        return self.engine.max_context

    def capped(self, max_tokens: int | None, default: int) -> int:
        """`max_tokens` (or `default` when unset or -1) lowered to the server's cap."""
        wanted = default if max_tokens is None or max_tokens < 0 else max_tokens
        return min(wanted, self.settings.max_tokens_cap)

    def check_model(self, name: str | None) -> None:
        """Refuse a request naming a model this server does not serve (OpenAI's 404 `model_not_found`)."""
        if name is not None and name != self.settings.model_name:
            raise ServingError(
                404,
                f"The model `{name}` does not exist; this server serves `{self.settings.model_name}`",
                param="model",
                code="model_not_found",
            )

    def check_choices(self, count: int, param: str) -> None:
        """Refuse more choices than the server allows; `param` is the field that asked for them (`n`, `n_cmpl`)."""
        if count > self.settings.max_choices:
            raise ServingError(
                400,
                f"{param} asks for {count} completions; this server allows {self.settings.max_choices}",
                param=param,
            )

    def check_can_infill(self, fields: Fields) -> None:
        """Refuse infilling on a model that cannot (34B, Python), naming the protocol's suffix field."""
        if self.model.cannot_infill is not None:
            raise ServingError(
                400,
                f"this model cannot fill in the middle ({self.model.cannot_infill}); send a prompt without a suffix",
                param=fields.suffix,
                code="infilling_not_supported",
            )

    def start(self, choices: Sequence[ChoiceRequest]) -> list[Generation]:
        """Submit every choice of a request to this server's engine, or none (`generation.start_all`)."""
        return start_all([functools.partial(Generation, self.engine, self.tokenizer, choice) for choice in choices])


def server_of(request: Request) -> Server:
    """The `Server` behind `request`."""
    server: Server = request.app.state.server
    return server


def note_usage(request: Request, generations: Iterable[Generation]) -> None:
    """Record token counts for the access-log line of `request`."""
    usage = request.scope.setdefault("state", {}).setdefault("codellama_usage", [0, 0, 0])
    for generation in generations:
        usage[0] += generation.prompt_tokens
        usage[1] += generation.cached_tokens
        usage[2] += generation.completion_tokens


async def run_to_end(request: Request, generations: Sequence[Generation]) -> None:
    """Run `generations` to the end for a non-streamed response (cancelled if the client leaves), counting usage."""
    await run_all(request.receive, generations)
    note_usage(request, generations)


__all__ = [
    "Server",
    "note_usage",
    "run_to_end",
    "server_of",
]
