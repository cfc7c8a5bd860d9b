"""Mistral's request and response bodies, as typed models (FastAPI validates requests against them)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..strict import StrictModel


class FimRequest(StrictModel):
    """`POST /v1/fim/completions`: Mistral's (and DeepSeek's) FIM completions, what Continue's `fimStream` posts."""

    model: str
    prompt: str
    suffix: str | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    min_tokens: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool = False
    stop: str | list[str] | None = None
    random_seed: int | None = Field(default=None, ge=0, lt=2**63)
    metadata: dict[str, Any] | None = None  # accepted, not used
    prompt_cache_key: str | None = None  # accepted: the prompt cache is always on
    # Continue sends these too: Mistral's definitions are OpenAI's (over the generated tokens).
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
