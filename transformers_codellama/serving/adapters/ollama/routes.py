"""Ollama's API: `POST /api/generate`, `POST /api/chat`, `GET /api/tags`, `POST /api/show`, `GET /api/ps`,
`GET /api/version`, as the `ollama` package, Continue's and twinny's Ollama providers and llm-vscode send them.

How `/api/generate` reads a request, written once here:

* a non-empty `suffix`: Meta's infilling layout of `prompt` and `suffix`, `raw` or not (Ollama drops the suffix of
  a `raw` request; a client that sends both means a middle); the response is the middle;
* an empty or missing `suffix`: Ollama's Code Llama template tests `if .Suffix`, so `"suffix": ""` is a plain
  completion there, and is here too (clients that want a middle before an empty suffix send `"\\n"`, as Continue
  does). A prompt that is an editor template (`<PRE> {prefix} <SUF>{suffix} <MID>`, twinny's and llm-vscode's) or
  holds `<FILL_ME>` still infills, `raw` or not, as Ollama's tokenizer reads those markers as Code Llama's tokens;
* otherwise, without `raw`, an Instruct model wraps `prompt` (and `system`) in its chat template, as Ollama's
  `codellama:instruct` template does; a base model completes the text. With `raw: true` the text is completed as is.

Streams (the default, `stream: true`) are JSON lines, one object per piece of text with `done: false`, then a last
object with `done: true`, `done_reason` (`stop` or `length`), the token counts and the durations in nanoseconds.
No `context` is returned (it is deprecated; a request sending one is refused). Options apply as Ollama's do
(`temperature` 0 is greedy; the defaults are Ollama's: 0.8, `top_k` 40, `top_p` 0.9); `num_predict` -1 or -2 (or
none) generates up to the end of the context, at most the server's cap; a smaller `num_ctx` is the context the prompt
must fit, a larger one is lowered to the model's. Errors are `{"error": "..."}` with the HTTP status.

`logprobs: true` (with `top_logprobs` 0..20 alternatives; outside that range a 400 with Ollama's message) adds
`logprobs`, one `{token, logprob, bytes, top_logprobs}` per generated token, to the response, or to each streamed
object for the tokens whose text it carries. They are of the distribution each token was sampled from (after the
temperature, `top_k` and `top_p`; greedy: the model's at temperature 1), as OpenAI's are here.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from .... import __version__
from ...engines.sampling import TokenLogprob
from ...http.errors import OLLAMA, Fields, ServingError
from ...http.framing import NDJSON, ndjson_line
from ..base import Adapter, refuse_unsupported, streamed, text_prompt, up_to_context
from ..context import Server, run_to_end, server_of
from ..generation import ChoiceRequest, Generation
from ..prompts import Prompt, chat_prompt, check_fits, split_infilling
from ..sampling import sampling_params
from ..token_text import chances
from .schema import OllamaChatRequest, OllamaGenerateRequest, OllamaOptions, OllamaShowRequest

router = APIRouter()
ADAPTER = Adapter(router, errors=OLLAMA, paths_under=("/api/",))
# The engine request's fields as Ollama spells them: the sampling ones are `options`.
ENGINE_FIELDS = {f"sampling.{name}": f"options.{name}" for name in ("temperature", "top_p", "top_k", "seed")}
GENERATE_FIELDS = Fields(prompt="prompt", suffix="suffix", max_tokens="options.num_predict", engine=ENGINE_FIELDS)
CHAT_FIELDS = Fields(prompt="messages", suffix="messages", max_tokens="options.num_predict", engine=ENGINE_FIELDS)
MAX_TOP_LOGPROBS = 20  # Ollama's limit
INFILL_TEMPLATE = "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"  # Ollama's Code Llama template, as /api/show says


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def tag_name(server: Server) -> str:
    """The model's Ollama name: its name with a tag (`:latest` when it has none, as Ollama names models)."""
    name = server.settings.model_name
    return name if ":" in name.rpartition("/")[2] else f"{name}:latest"


def _check_model(server: Server, name: str) -> None:
    if name not in (server.settings.model_name, tag_name(server)):
        raise ServingError(404, f"model '{name}' not found; this server serves '{tag_name(server)}'", param="model")


def _context(server: Server, options: OllamaOptions) -> int:
    """The context a request's prompt and generation must fit: `num_ctx` when smaller than the model's."""
    return min(options.num_ctx or server.max_context, server.max_context)


def _wants_open_budget(options: OllamaOptions) -> bool:
    return options.num_predict is None or options.num_predict < 0


def _logprobs(body: OllamaGenerateRequest | OllamaChatRequest) -> int | None:
    """How many alternatives each token's log-probability lists (None: none asked). As Ollama, `top_logprobs` without
    `logprobs` asks for nothing, and outside 0..20 is a 400."""
    top = body.top_logprobs or 0
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise ServingError(400, f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs")
    return top if body.logprobs else None


def logprobs_of(server: Server, records: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    """Ollama's `logprobs` of `records`: per token its text, log-probability and UTF-8 bytes, and its alternatives
    (`top_logprobs`, left out when none were asked for, as Ollama's `omitempty`)."""

    def entry(piece: bytes, logprob: float) -> dict[str, Any]:
        shown: dict[str, Any] = {"token": piece.decode("utf-8", errors="replace"), "logprob": logprob}
        if piece:
            shown["bytes"] = list(piece)
        return shown

    entries = []
    for record in records:
        chosen, alternatives = chances(server.tokenizer, record)
        shown = entry(chosen.piece, chosen.logprob)
        if alternatives:
            shown["top_logprobs"] = [entry(other.piece, other.logprob) for other in alternatives]
        entries.append(shown)
    return entries


def _sampling_and_start(
    server: Server, prompt: Prompt, options: OllamaOptions, budget: int, fields: Fields, logprobs: int | None
) -> Generation:
    params = sampling_params(options.temperature, options.top_p, options.top_k, options.seed)
    [generation] = server.start(
        [ChoiceRequest(prompt, budget, params, stop=options.stop or (), fields=fields, logprobs=logprobs)]
    )
    return generation


def _generate_prompt(server: Server, body: OllamaGenerateRequest, budget: int, context: int) -> Prompt:
    """The prompt of `/api/generate` (see the module's docstring for the cases)."""
    text = body.prompt or ""
    if body.raw and body.system:
        raise ServingError(400, "raw mode does not support system: put the system text in prompt", param="system")
    if body.suffix:  # with `raw` too: Ollama would drop the suffix there, but a client sending both means a middle
        return text_prompt(
            server, text, suffix=body.suffix, max_new_tokens=budget, fields=GENERATE_FIELDS, max_context=context
        )
    chat = not body.raw and server.tokenizer.chat_template is not None
    if not chat or split_infilling(text, fields=GENERATE_FIELDS) is not None:
        if body.system:
            raise ServingError(
                400, "system needs an Instruct model's chat template; this model has none", param="system"
            )
        return text_prompt(server, text, max_new_tokens=budget, fields=GENERATE_FIELDS, max_context=context)
    messages = ([{"role": "system", "content": body.system}] if body.system else []) + [
        {"role": "user", "content": text}
    ]
    prompt = chat_prompt(server.tokenizer, messages, max_context=context, max_new_tokens=budget, fields=GENERATE_FIELDS)
    return Prompt(ids=prompt.ids, mode=prompt.mode, text=text)


def _counts(generation: Generation) -> dict[str, Any]:
    """The last object's `done_reason`, token counts and durations (nanoseconds)."""
    prompt_ns = int(generation.prompt_seconds * 1e9)
    eval_ns = int(generation.generation_seconds * 1e9)
    return {
        "done": True,
        "done_reason": "stop" if generation.finish_reason == "stop" else "length",
        "total_duration": prompt_ns + eval_ns,
        "load_duration": 0,
        "prompt_eval_count": generation.prompt_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": generation.completion_tokens,
        "eval_duration": eval_ns,
    }


async def _answer(
    server: Server,
    request: Request,
    generation: Generation,
    stream: bool,
    piece: Callable[[str], dict[str, Any]],
    logprobs: int | None = None,
) -> Response:
    """The response of one generation: one object, or JSON lines ending with the `done: true` object; with
    `logprobs` asked, each carries the `logprobs` of the tokens whose text it carries."""
    head = {"model": server.settings.model_name}
    wanted = logprobs is not None

    def shown(records: Sequence[TokenLogprob]) -> dict[str, Any]:
        return {"logprobs": logprobs_of(server, records)} if wanted and records else {}

    if not stream:
        await run_to_end(request, [generation])
        records = generation.token_logprobs[: generation.completion_tokens]
        return JSONResponse(
            {**head, "created_at": _now(), **piece(generation.text), **shown(records), **_counts(generation)}
        )

    async def lines() -> AsyncGenerator[str, None]:
        pending: list[TokenLogprob] = []  # the records of tokens whose text is still held back
        async for delta in generation:
            if delta.logprob is not None:
                pending.append(delta.logprob)
            if delta.text:
                yield ndjson_line({**head, "created_at": _now(), **piece(delta.text), **shown(pending), "done": False})
                pending = []
        yield ndjson_line({**head, "created_at": _now(), **piece(""), **shown(pending), **_counts(generation)})

    return streamed(request, [generation], lines(), errors=OLLAMA, framing=NDJSON)


def _budgeted(
    server: Server, options: OllamaOptions, make: Callable[[int], Prompt], fields: Fields
) -> tuple[Prompt, int]:
    """The prompt (`make(budget)`) and its budget: `num_predict`, or the rest of the context when it sets none."""
    context = _context(server, options)
    if _wants_open_budget(options):
        prompt = make(0)
        return prompt, up_to_context(server, prompt, max_context=context)
    budget = server.capped(options.num_predict, server.settings.max_tokens_cap)
    prompt = make(budget)
    check_fits(len(prompt.ids), budget, context, fields=fields)
    return prompt, budget


# ------------------------------------------------------------------------------------------------ generate, chat
def _checked_server(body: OllamaGenerateRequest | OllamaChatRequest, request: Request) -> Server:
    """The server for a generate or chat request, once its model name and fields (and options) are accepted."""
    server = server_of(request)
    _check_model(server, body.model)
    refuse_unsupported(body, body.NEUTRAL)
    refuse_unsupported(body.options, body.options.NEUTRAL, prefix="options.")
    _logprobs(body)
    return server


@router.post("/api/generate", response_model=None)
async def generate(body: OllamaGenerateRequest, request: Request) -> Response:
    """Completion or fill-in-the-middle (`suffix`), streamed as JSON lines unless `stream: false`."""
    server = _checked_server(body, request)
    if not body.prompt and not body.suffix:  # Ollama's way to load (or, with keep_alive 0, unload) a model
        reason = "unload" if body.keep_alive in (0, "0", "0s") else "load"
        return JSONResponse(
            {
                "model": server.settings.model_name,
                "created_at": _now(),
                "response": "",
                "done": True,
                "done_reason": reason,
            }
        )
    context = _context(server, body.options)
    prompt, budget = _budgeted(
        server, body.options, lambda budget: _generate_prompt(server, body, budget, context), GENERATE_FIELDS
    )
    logprobs = _logprobs(body)
    generation = _sampling_and_start(server, prompt, body.options, budget, GENERATE_FIELDS, logprobs)
    return await _answer(server, request, generation, body.stream, lambda text: {"response": text}, logprobs)


def _messages(body: OllamaChatRequest) -> list[dict[str, str]]:
    for index, message in enumerate(body.messages):
        for name in ("images", "tool_calls", "thinking", "tool_name"):
            if getattr(message, name):
                raise ServingError(400, f"messages[{index}].{name} is not supported by this server", param="messages")
    return [{"role": message.role, "content": message.content} for message in body.messages]


@router.post("/api/chat", response_model=None)
async def chat(body: OllamaChatRequest, request: Request) -> Response:
    """Chat with a Code Llama - Instruct checkpoint through its exact chat template."""
    server = _checked_server(body, request)
    messages = _messages(body)
    if not messages:  # Ollama's way to load a model for chat
        return JSONResponse(
            {
                "model": server.settings.model_name,
                "created_at": _now(),
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "load",
            }
        )
    context = _context(server, body.options)
    prompt, budget = _budgeted(
        server,
        body.options,
        lambda budget: chat_prompt(
            server.tokenizer, messages, max_context=context, max_new_tokens=budget, fields=CHAT_FIELDS
        ),
        CHAT_FIELDS,
    )
    logprobs = _logprobs(body)
    generation = _sampling_and_start(server, prompt, body.options, budget, CHAT_FIELDS, logprobs)
    return await _answer(
        server,
        request,
        generation,
        body.stream,
        lambda text: {"message": {"role": "assistant", "content": text}},
        logprobs,
    )


# ------------------------------------------------------------------------------------------------ models
def _details(server: Server) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "safetensors",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "",
        "quantization_level": server.model.dtype.upper(),
    }


def _card(server: Server) -> dict[str, Any]:
    """What `/api/tags` and `/api/ps` say of the model (`digest` is of its name: there is no GGUF file here)."""
    name = tag_name(server)
    return {
        "name": name,
        "model": name,
        "modified_at": datetime.datetime.fromtimestamp(server.created, datetime.UTC).isoformat().replace("+00:00", "Z"),
        "size": 0,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": _details(server),
    }


def _template(server: Server) -> str:
    """The Ollama template that describes what this server does with a request (clients look for `.Suffix` in it
    to know the model can fill in the middle)."""
    plain = "[INST] {{ .Prompt }} [/INST]" if server.tokenizer.chat_template is not None else "{{ .Prompt }}"
    if server.model.cannot_infill is not None:
        return plain
    return f"{{{{- if .Suffix }}}}{INFILL_TEMPLATE}{{{{- else }}}}{plain}{{{{- end }}}}"


@router.get("/api/tags", response_model=None)
async def tags(request: Request) -> Response:
    """The one model this server serves."""
    return JSONResponse({"models": [_card(server_of(request))]})


@router.get("/api/ps", response_model=None)
async def ps(request: Request) -> Response:
    """The loaded model (always this server's one, for as long as it runs)."""
    server = server_of(request)
    return JSONResponse(
        {"models": [{**_card(server), "expires_at": None, "size_vram": 0, "context_length": server.max_context}]}
    )


@router.post("/api/show", response_model=None)
async def show(body: OllamaShowRequest, request: Request) -> Response:
    """The model's template, context length and capabilities (`insert`: it fills in the middle)."""
    server = server_of(request)
    name = body.model or body.name
    if name is None:
        raise ServingError(400, "missing required field: model", param="model")
    _check_model(server, name)
    capabilities = ["completion"] + (["insert"] if server.model.cannot_infill is None else [])
    return JSONResponse(
        {
            "license": "",
            "modelfile": f"FROM {server.settings.model_name}\n",
            "parameters": "",
            "template": _template(server),
            "details": _details(server),
            "model_info": {"general.architecture": "llama", "llama.context_length": server.max_context},
            "capabilities": capabilities,
            "modified_at": _card(server)["modified_at"],
        }
    )


@router.get("/api/version", response_model=None)
async def version() -> Response:
    """This server's version (not an Ollama version)."""
    return JSONResponse({"version": __version__})


__all__ = ["ADAPTER", "router", "tag_name"]
