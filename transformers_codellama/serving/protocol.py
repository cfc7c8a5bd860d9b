"""Request and response bodies of each protocol, as typed models (FastAPI validates requests against them).

Requests are strict: a field of the wrong type, a number out of range or a field the protocol does not have is a 4xx
naming the field, never a coercion. Fields a protocol has but this server does not implement are accepted only at
their neutral value (`unsupported_fields` lists the rest, so the handler refuses them by name). Field facts:
`SERVING.md` (OpenAI's openapi spec, llama.cpp's server, TGI's router).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def unsupported_fields(request: BaseModel, neutral: dict[str, Any]) -> list[str]:
    """The fields of `request` that are set to something other than their neutral value (unimplemented features)."""
    return [name for name, value in neutral.items() if getattr(request, name) not in (value, None)]


# ---------------------------------------------------------------------------------------------------- OpenAI
class StreamOptions(_Strict):
    include_usage: bool = False


class _OpenAIRequest(_Strict):
    """The sampling and streaming fields OpenAI's completions and chat requests share (with OpenAI's defaults)."""

    model: str
    temperature: float | None = Field(default=1.0, ge=0, le=2)
    top_p: float | None = Field(default=1.0, ge=0, le=1)
    n: int = Field(default=1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(default=None, max_length=4)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    user: str | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None  # refused unless neutral (empty)


class CompletionRequest(_OpenAIRequest):
    """`POST /v1/completions`: OpenAI's legacy completions; `suffix` (even "") means fill-in-the-middle."""

    prompt: str | list[str] | list[int] | list[list[int]]  # token ids are used as given
    suffix: str | None = None
    max_tokens: int | None = Field(default=16, ge=0)
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5)
    best_of: int | None = Field(default=None, ge=1, le=20)

    # OpenAI fields without an implementation here: refused unless neutral.
    NEUTRAL: ClassVar[dict[str, Any]] = {"logit_bias": {}}


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        """The message's text (content parts joined)."""
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class ChatCompletionRequest(_OpenAIRequest):
    """`POST /v1/chat/completions` for Code Llama - Instruct checkpoints."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=0)
    max_completion_tokens: int | None = Field(default=None, ge=0)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    NEUTRAL: ClassVar[dict[str, Any]] = {"logit_bias": {}}


class PromptTokensDetails(BaseModel):
    cached_tokens: int


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class CompletionLogprobs(BaseModel):
    """Legacy completions' `logprobs`: per generated token its text, log-probability, the alternatives and offset."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class IdentifiedResponse(BaseModel):
    """What a completion, a chat completion and a chat chunk open with: the request's id, creation time and model
    (`openai_api.response_identity`), after `object`, which each names with its own literal."""

    id: str
    object: str
    created: int
    model: str


class Completion(IdentifiedResponse):
    """A `text_completion` object: the whole response, or one stream chunk (the same shape, per OpenAI)."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    usage: Usage | None = None
    truncated: bool | None = None  # this server's: the infilling budget cut the prefix or suffix


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprobOut(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprobOut] | None
    refusal: list[TokenLogprobOut] | None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(IdentifiedResponse):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(IdentifiedResponse):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "transformers-codellama"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---------------------------------------------------------------------------------------------------- llama.cpp
class ExtraChunk(BaseModel):
    """One `input_extra` chunk (other keys, such as llama.vscode's `time`, are ignored as llama.cpp does)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    text: str
    filename: str = "tmp"


class LlamaCppOptions(_Strict):
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


class TokenizeRequest(_Strict):
    """`POST /tokenize`."""

    content: str
    add_special: bool = False
    parse_special: bool = True  # the tokenizer always reads special-token text as the special token
    with_pieces: bool = False


class DetokenizeRequest(_Strict):
    """`POST /detokenize`."""

    tokens: list[int]


# ---------------------------------------------------------------------------------------------------- TGI
class TgiParameters(_Strict):
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


class TgiRequest(_Strict):
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


# ---------------------------------------------------------------------------------------------------- Mistral
class FimRequest(_Strict):
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


# ---------------------------------------------------------------------------------------------------- Ollama
class OllamaOptions(_Strict):
    """Ollama's `options`: the sampling ones are applied, the runtime ones accepted without effect (they tune
    llama.cpp's loading and threads), the rest accepted only at their neutral value (`NEUTRAL`)."""

    temperature: float | None = Field(default=None, ge=0, le=100)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
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
    # tokens, a window the engine's penalties (over the whole text) do not have. the samplers below are not the engine's.
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    tfs_z: float | None = None
    mirostat: int | None = None

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "tfs_z": 1.0,
        "mirostat": 0,
    }


class _OllamaRequest(_Strict):
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


class OllamaShowRequest(_Strict):
    """`POST /api/show` (older clients send `name`)."""

    model: str | None = None
    name: str | None = None
    verbose: bool = False
