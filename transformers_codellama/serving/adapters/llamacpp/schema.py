"""llama.cpp's request and response bodies, as typed models (FastAPI validates requests against them)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ..strict import StrictModel


class ExtraChunk(BaseModel):
    """One `input_extra` chunk (other keys, such as llama.vscode's `time`, are ignored as llama.cpp does)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    text: str
    filename: str = "tmp"


class LlamaCppOptions(StrictModel):
    """The generation options llama.cpp's `/completion` and `/infill` share (llama.cpp's defaults)."""

    n_predict: int | None = Field(default=None, ge=-1)
    max_tokens: int | None = Field(default=None, ge=-1)
    max_completion_tokens: int | None = Field(default=None, ge=-1)
    stream: bool = False
    temperature: float = Field(default=0.8, ge=-2, le=100)
    top_k: int = Field(default=40, ge=0)
    top_p: float = Field(default=0.95, ge=0, le=1)
    min_p: float = Field(default=0.05, ge=0, le=1)
    stop: list[str] = []
    seed: int = Field(default=-1, ge=-(2**63), lt=2**63)
    n_cmpl: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1)
    t_max_predict_ms: int | None = Field(default=None, ge=0)
    return_tokens: bool = False
    response_fields: list[str] | None = None
    # Accepted and without effect here (documented): the prompt cache is always on, one scheduler has no slots.
    samplers: list[str] | str | None = None
    cache_prompt: bool = True
    id_slot: int = -1
    n_indent: int = Field(default=0, ge=0)
    t_max_prompt_ms: int | None = None
    timings_per_token: bool = False
    model: str | None = None
    # The log-probabilities of the distribution each token was sampled from, with `n_probs` alternatives.
    n_probs: int = Field(default=0, ge=0)
    post_sampling_probs: bool = False
    # Refused unless neutral: one model has no `lora`; llama.cpp's penalties count only the last `penalty_last_n`
    # tokens, a window the engine's penalties (over the whole text) do not have.
    lora: list[dict[str, Any]] | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    penalty_last_n: int | None = None  # without a penalty it changes nothing (Tabby sends 0)
    mirostat: int | None = None

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "lora": [],
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "mirostat": 0,
    }


class InfillRequest(LlamaCppOptions):
    """`POST /infill` as llama.cpp's server takes it and llama.vscode / llama.vim send it."""

    input_prefix: str
    input_suffix: str
    input_extra: list[ExtraChunk] = []
    prompt: str = ""
    # This server's own: Meta's suffix-prefix-middle layout for this request (llama.cpp has it as `--spm-infill`).
    spm_infill: bool = False


class LlamaCppCompletionRequest(LlamaCppOptions):
    """`POST /completion` (and `/completions`): llama.cpp's native completion, what Tabby and Continue post."""

    prompt: str | list[int]


class TokenizeRequest(StrictModel):
    """`POST /tokenize`."""

    content: str
    add_special: bool = False
    parse_special: bool = True  # the tokenizer always reads special-token text as the special token
    with_pieces: bool = False


class DetokenizeRequest(StrictModel):
    """`POST /detokenize`."""

    tokens: list[int]
