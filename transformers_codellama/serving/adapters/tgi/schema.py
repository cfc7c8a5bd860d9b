"""TGI's request and response bodies, as typed models (FastAPI validates requests against them)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from ..strict import StrictModel


class TgiParameters(StrictModel):
    """TGI's `parameters`, validated as TGI validates them (e.g. `temperature > 0`, `0 < top_p < 1`)."""

    max_new_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, gt=0, le=100)
    top_p: float | None = Field(default=None, gt=0, lt=1)
    top_k: int | None = Field(default=None, gt=0)
    do_sample: bool = False
    stop: list[str] = Field(default=[], max_length=4)
    return_full_text: bool | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    details: bool = False
    decoder_input_details: bool = False
    truncate: int | None = None
    repetition_penalty: float | None = Field(default=None, gt=0)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    best_of: int | None = None
    typical_p: float | None = None
    watermark: bool = False
    top_n_tokens: int | None = Field(default=None, ge=0, le=5)  # TGI's default `max_top_n_tokens`
    grammar: dict[str, Any] | None = None
    adapter_id: str | None = None

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "truncate": None,
        "best_of": 1,
        "typical_p": None,
        "watermark": False,
        "grammar": None,
        "adapter_id": None,
    }


class TgiRequest(StrictModel):
    """`POST /generate`, `/generate_stream` and `/` (where `InferenceClient(base_url=...)` posts)."""

    inputs: str
    parameters: TgiParameters = TgiParameters()
    stream: bool = False


class TgiToken(BaseModel):
    id: int
    text: str
    logprob: float | None = None
    special: bool


class TgiPrefillToken(BaseModel):
    id: int
    text: str
    logprob: float | None = None


class TgiDetails(BaseModel):
    finish_reason: Literal["length", "eos_token", "stop_sequence"]
    generated_tokens: int
    seed: int | None = None
    input_length: int | None = None
    prefill: list[TgiPrefillToken] = []
    tokens: list[TgiToken] = []
    top_tokens: list[list[TgiToken]] | None = None


class TgiResponse(BaseModel):
    generated_text: str
    details: TgiDetails | None = None


class TgiStreamEvent(BaseModel):
    index: int
    token: TgiToken
    top_tokens: list[TgiToken] | None = None
    generated_text: str | None = None
    details: TgiDetails | None = None
