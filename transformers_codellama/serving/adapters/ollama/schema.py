"""Ollama's request and response bodies, as typed models (FastAPI validates requests against them)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..strict import StrictModel


class OllamaOptions(StrictModel):
    """Ollama's `options`: the sampling ones are applied, the runtime ones accepted without effect (they tune
    llama.cpp's loading and threads), the rest accepted only at their neutral value (`NEUTRAL`)."""

    # Ollama's defaults (docs/modelfile.md) where a request leaves an option out or sends null.
    temperature: float | None = Field(default=0.8, ge=0, le=100)
    top_p: float | None = Field(default=0.9, ge=0, le=1)
    top_k: int | None = Field(default=40, ge=0)
    num_predict: int | None = Field(default=None, ge=-2)
    stop: list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    num_ctx: int | None = Field(default=None, ge=1)
    # Without effect here: how Ollama loads and runs llama.cpp, and options that only matter with a penalty.
    num_keep: int | None = None
    num_batch: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    num_thread: int | None = None
    numa: bool | None = None
    low_vram: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None
    vocab_only: bool | None = None
    use_mmap: bool | None = None
    use_mlock: bool | None = None
    embedding_only: bool | None = None
    repeat_last_n: int | None = None
    penalize_newline: bool | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    # Refused unless neutral: Ollama's penalties are llama.cpp's, over the last `repeat_last_n` tokens, a window the
    # engine's penalties (over the whole text) do not have; the samplers below are not the engine's.
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    tfs_z: float | None = None
    mirostat: int | None = None

    @field_validator("temperature", "top_p", "top_k", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        return cls.model_fields[info.field_name or ""].default if value is None else value

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "tfs_z": 1.0,
        "mirostat": 0,
    }


class _OllamaRequest(StrictModel):
    model: str
    stream: bool = True
    options: OllamaOptions = OllamaOptions()
    keep_alive: float | str | None = None  # accepted: the model stays loaded while the server runs
    format: str | dict[str, Any] | None = None
    think: bool | str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None  # 0..20, checked by the handler with Ollama's message


class OllamaGenerateRequest(_OllamaRequest):
    """`POST /api/generate`."""

    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    raw: bool = False
    # Refused unless neutral: no Go templates, images or token context here.
    template: str | None = None
    context: list[int] | None = None
    images: list[str] | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "format": "",
        "think": False,
        "template": "",
        "context": [],
        "images": [],
        "width": None,
        "height": None,
        "steps": None,
    }


class OllamaMessage(BaseModel):
    """One chat message (Ollama's `images`, `thinking` and tool fields are refused unless empty)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["system", "user", "assistant"]
    content: str = ""
    images: list[str] | None = None
    thinking: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None


class OllamaChatRequest(_OllamaRequest):
    """`POST /api/chat` (Code Llama - Instruct)."""

    messages: list[OllamaMessage] = []
    tools: list[dict[str, Any]] | None = None

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "format": "",
        "think": False,
        "tools": [],
    }


class OllamaShowRequest(StrictModel):
    """`POST /api/show` (older clients send `name`)."""

    model: str | None = None
    name: str | None = None
    verbose: bool = False
