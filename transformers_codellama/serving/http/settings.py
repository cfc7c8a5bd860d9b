"""What the server allows: the model's name, the API key and the limits on a request."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..defaults import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CHOICES, DEFAULT_MAX_TOKENS_CAP


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
    max_choices: int = DEFAULT_MAX_CHOICES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: list[str] = field(default_factory=list)


__all__ = ["ServerSettings"]
