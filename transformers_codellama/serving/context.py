"""What every endpoint shares: the server's settings, its engine and tokenizer, and the per-request helpers.

`Server` is what the app puts on `app.state.server` and every adapter reads with `server_of(request)`: the engine
(any `engine_api.Engine`), the tokenizer, what the model can do, and the settings. The app and the adapters both
import this module; it imports neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from ..infilling import cannot_infill
from .engine_api import Engine, Tokenizer
from .errors import GENERIC_FIELDS, Fields, ServingError
from .generation import Generation, run_all
from .prompts import Prompt
from .sampling import SamplingParams

DEFAULT_MAX_TOKENS_CAP = 2048
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass
class ServerSettings:
    """What the server allows.

    Attributes:
        model_name: The model's name in requests (`model`) and responses; `/v1` requests naming another are 404.
        api_key: When set, every endpoint but `/health` requires `Authorization: Bearer <api_key>`.
        max_tokens_cap: The most tokens one choice may generate; larger `max_tokens`/`n_predict` are lowered to it.
        max_choices: The most choices (`n`, `n_cmpl`, prompts × `n`) one request may ask for.
        max_body_bytes: The largest request body accepted (413 above it).
        cors_origins: Origins allowed by CORS; none (CORS off) by default.
    """

    model_name: str
    api_key: str | None = None
    max_tokens_cap: int = DEFAULT_MAX_TOKENS_CAP
    max_choices: int = 8
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ModelFacts:
    """What the endpoints report or check about the model, read once from it (the engine owns the model itself).

    Attributes:
        dtype: Its weights' dtype (`bfloat16`), "" when unknown.
        device_type: Where it runs (`cuda`, `cpu`).
        cannot_infill: Why it cannot fill in the middle (`infilling.cannot_infill`), or None when it can.
    """

    dtype: str = ""
    device_type: str = "cpu"
    cannot_infill: str | None = None

    @classmethod
    def of(cls, model: Any, tokenizer: Tokenizer) -> ModelFacts:
        """The facts of a loaded transformers `model` and its `tokenizer`."""
        parameter = next(model.parameters(), None)
        return cls(
            dtype=str(getattr(parameter, "dtype", "")).removeprefix("torch."),
            device_type=str(getattr(getattr(parameter, "device", None), "type", "cpu")),
            cannot_infill=cannot_infill(model.config, tokenizer),
        )


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

    def generation(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int,
        sampling: SamplingParams,
        stop: Sequence[str] = (),
        time_limit_ms: int | None = None,
        fields: Fields = GENERIC_FIELDS,
        logprobs: int | None = None,
        prompt_logprobs: bool = False,
        min_new_tokens: int = 0,
    ) -> Callable[[], Generation]:
        """What starts one choice of a request on this server's engine (for `generation.start_all`)."""
        return lambda: Generation(
            self.engine,
            self.tokenizer,
            prompt,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            stop=stop,
            time_limit_ms=time_limit_ms,
            fields=fields,
            logprobs=logprobs,
            prompt_logprobs=prompt_logprobs,
            min_new_tokens=min_new_tokens,
        )


def server_of(request: Request) -> Server:
    """The `Server` behind `request`."""
    server: Server = request.app.state.server
    return server


def sampling_params(
    temperature: float | None, top_p: float | None, top_k: int | None, seed: int | None, **penalties: float | None
) -> SamplingParams:
    """The engine's `SamplingParams` from a request's values (None: unset); temperature 0 or a nucleus of 0 is greedy.

    `penalties` are `SamplingParams`' penalty fields; an unset one (None) is off.
    """
    temperature = 1.0 if temperature is None else max(0.0, temperature)
    top_p = 1.0 if top_p is None else top_p
    if top_p <= 0:
        temperature, top_p = 0.0, 1.0
    chosen = {name: float(value) for name, value in penalties.items() if value is not None}
    return SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k or 0, seed=seed, **chosen)


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
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_TOKENS_CAP",
    "ModelFacts",
    "Server",
    "ServerSettings",
    "note_usage",
    "run_to_end",
    "sampling_params",
    "server_of",
]
