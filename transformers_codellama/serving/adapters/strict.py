"""Request and response bodies of each protocol, as typed models (FastAPI validates requests against them).

Requests are strict: a field of the wrong type, a number out of range or a field the protocol does not have is a 4xx
naming the field, never a coercion. Fields a protocol has but this server does not implement are accepted only at
their neutral value (`unsupported_fields` lists the rest, so the handler refuses them by name). Field facts:
`SERVING.md` (OpenAI's openapi spec, llama.cpp's server, TGI's router).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A request body: a wrong type, or a field the protocol does not have, is a 4xx naming the field."""

    model_config = ConfigDict(extra="forbid", strict=True)


def unsupported_fields(request: BaseModel, neutral: dict[str, Any]) -> list[str]:
    """The fields of `request` that are set to something other than their neutral value (unimplemented features)."""
    return [name for name, value in neutral.items() if getattr(request, name) not in (value, None)]
