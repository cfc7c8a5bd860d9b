"""OpenAI's API: `POST /v1/completions` (completion and fill-in-the-middle), `POST /v1/chat/completions`, `GET /v1/models`.

`/v1/completions` infills when the request has a `suffix` (an empty one too), when its `prompt` is an editor template
(`<PRE> {prefix} <SUF>{suffix} <MID>`, what Continue sends) or holds `<FILL_ME>`; `text` is then the middle only,
decoded as Meta decodes it. Otherwise it completes `[BOS] + encode(prompt)` and `text` is what follows the prompt
(`prompt + text` reads as generated). A prompt of token ids (a list of ints, or a list of such lists) is used exactly
as given; it infills when it holds `▁<MID>`. `echo` prepends the prompt's text (decoded, for token ids); with a
`suffix` it is refused, as OpenAI refuses it. Streams are OpenAI chunks, `finish_reason` on the last chunk of each choice,
an optional usage chunk, then `data: [DONE]`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from .adapter import Adapter, ids_prompt, refuse_unsupported, streamed, text_prompt
from .context import Server, run_to_end, sampling_params, server_of
from .errors import OPENAI, Fields, ServingError
from .generation import Generation, merged, sse_event, start_all
from .prompts import Prompt, chat_prompt, check_fits
from .protocol import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatMessageOut,
    Completion,
    CompletionChoice,
    CompletionRequest,
    ModelCard,
    ModelList,
    PromptTokensDetails,
    Usage,
)

router = APIRouter()
ADAPTER = Adapter(router, errors=OPENAI, paths_under=("/v1/",))
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions
COMPLETION_FIELDS = Fields(prompt="prompt", suffix="suffix", max_tokens="max_tokens")


def body_of(payload: Any) -> dict[str, Any]:
    """A response model as JSON data; this server's optional `truncated` field only where it is set."""
    data: dict[str, Any] = payload.model_dump()
    if data.get("truncated", False) is None:
        del data["truncated"]
    return data


def sse(payload: Any) -> str:
    """One server-sent event carrying `payload` (a response model or a dict) as JSON."""
    return sse_event(body_of(payload) if hasattr(payload, "model_dump") else payload)


def usage_of(generations: Sequence[Generation]) -> Usage:
    prompt = sum(generation.prompt_tokens for generation in generations)
    completion = sum(generation.completion_tokens for generation in generations)
    cached = sum(generation.cached_tokens for generation in generations)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )


async def openai_events(
    generations: list[Generation],
    *,
    opening: Callable[[int, Generation], str | None],
    delta: Callable[[int, str], str],
    closing: Callable[[int, Generation], str],
    usage: Callable[[Usage], str] | None,
) -> AsyncGenerator[str, None]:
    """An OpenAI stream of `generations` (completions and chat alike): each choice's opening chunk (if any), the text
    deltas as they come, each choice's closing chunk with its finish reason, the usage chunk when asked for, then
    `[DONE]` (`adapter.streamed` adds the error tail)."""
    for index, generation in enumerate(generations):
        if (first := opening(index, generation)) is not None:
            yield first
    async for index, piece in merged(generations):
        if piece.text:
            yield delta(index, piece.text)
    for index, generation in enumerate(generations):
        yield closing(index, generation)
    if usage is not None:
        yield usage(usage_of(generations))
    yield "data: [DONE]\n\n"


def finish_reason(generation: Generation) -> Literal["stop", "length"]:
    """OpenAI's `finish_reason`: `stop` when a stop id or string ended the choice, else `length`."""
    return "stop" if generation.finish_reason == "stop" else "length"


def stop_list(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


# ------------------------------------------------------------------------------------------------ completions
def completion_prompts(server: Server, body: CompletionRequest, max_new_tokens: int) -> list[Prompt]:
    """The prompt of each entry of `body.prompt`: a text (infilling or completion) or token ids, used as given."""
    if not body.prompt:
        raise ServingError(400, "prompt must not be empty", param="prompt")
    if body.echo and body.suffix is not None:
        raise ServingError(400, "echo is not supported with suffix", param="echo")
    sent: list[Any] = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    # A list of ints is one prompt of token ids; a list of strings or of id lists is one prompt per entry.
    entries: list[str | list[int]] = [sent] if isinstance(sent[0], int) else sent
    prompts = []
    for entry in entries:
        if isinstance(entry, str):
            prompt = text_prompt(
                server, entry, suffix=body.suffix, max_new_tokens=max_new_tokens, fields=COMPLETION_FIELDS
            )
        elif body.suffix is not None:
            raise ServingError(400, "suffix cannot be used with a prompt of token ids", param="suffix")
        elif not entry:
            raise ServingError(400, "prompt must not hold an empty list of token ids", param="prompt")
        else:
            prompt = ids_prompt(server, entry, max_new_tokens=max_new_tokens, fields=COMPLETION_FIELDS)
        prompts.append(prompt)
    return prompts


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> Response:
    """OpenAI completions; fill-in-the-middle with `suffix` or an editor template prompt."""
    server = server_of(request)
    server.check_model(body.model)
    refuse_unsupported(body, body.NEUTRAL)
    max_new_tokens = server.capped(body.max_tokens, DEFAULT_MAX_TOKENS)
    prompts = completion_prompts(server, body, max_new_tokens)
    server.check_choices(len(prompts) * body.n, "n")
    stops = stop_list(body.stop)

    def factory(prompt: Prompt, choice: int) -> Callable[[], Generation]:
        seed = None if body.seed is None else body.seed + choice
        params = sampling_params(body.temperature, body.top_p, None, seed)
        return server.generation(
            prompt, max_new_tokens=max_new_tokens, sampling=params, stop=stops, fields=COMPLETION_FIELDS
        )

    generations = start_all([factory(prompt, choice) for prompt in prompts for choice in range(body.n)])
    identity: dict[str, Any] = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": server.settings.model_name,
    }
    truncated = True if any(prompt.truncated for prompt in prompts) else None

    if not body.stream:
        await run_to_end(request, generations)
        choices = [
            CompletionChoice(
                index=index,
                text=(generation.prompt.text if body.echo else "") + generation.text,
                finish_reason=finish_reason(generation),
            )
            for index, generation in enumerate(generations)
        ]
        return JSONResponse(
            body_of(Completion(**identity, choices=choices, usage=usage_of(generations), truncated=truncated))
        )

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(index: int, text: str, reason: Literal["stop", "length"] | None) -> str:
        choice = CompletionChoice(index=index, text=text, finish_reason=reason)
        return sse(Completion(**identity, choices=[choice], truncated=truncated))

    return streamed(
        request,
        generations,
        openai_events(
            generations,
            opening=lambda index, generation: chunk(index, generation.prompt.text, None) if body.echo else None,
            delta=lambda index, text: chunk(index, text, None),
            closing=lambda index, generation: chunk(index, "", finish_reason(generation)),
            usage=(lambda usage: sse(Completion(**identity, choices=[], usage=usage))) if include_usage else None,
        ),
        errors=OPENAI,
    )


# ------------------------------------------------------------------------------------------------ chat
@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """Chat with a Code Llama - Instruct checkpoint through its exact chat template."""
    server = server_of(request)
    server.check_model(body.model)
    refuse_unsupported(body, body.NEUTRAL)
    messages = [{"role": message.role, "content": message.text()} for message in body.messages]
    wanted_field = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    fields = Fields(prompt="messages", suffix="messages", max_tokens=wanted_field)
    prompt = chat_prompt(server.tokenizer, messages, max_context=server.max_context, max_new_tokens=0, fields=fields)
    wanted = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    max_new_tokens = server.capped(wanted, server.max_context - len(prompt.ids))
    check_fits(len(prompt.ids), max_new_tokens, server.max_context, fields=fields)
    server.check_choices(body.n, "n")
    stops = stop_list(body.stop)

    def factory(choice: int) -> Callable[[], Generation]:
        seed = None if body.seed is None else body.seed + choice
        params = sampling_params(body.temperature, body.top_p, None, seed)
        return server.generation(prompt, max_new_tokens=max_new_tokens, sampling=params, stop=stops, fields=fields)

    generations = start_all([factory(choice) for choice in range(body.n)])
    identity: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": server.settings.model_name,
    }

    if not body.stream:
        await run_to_end(request, generations)
        choices = [
            ChatChoice(
                index=index,
                message=ChatMessageOut(content=generation.text),
                finish_reason=finish_reason(generation),
            )
            for index, generation in enumerate(generations)
        ]
        return JSONResponse(ChatCompletion(**identity, choices=choices, usage=usage_of(generations)).model_dump())

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(index: int, delta: ChatDelta, reason: Literal["stop", "length"] | None = None) -> str:
        choice = ChatChunkChoice(index=index, delta=delta, finish_reason=reason)
        return sse(ChatCompletionChunk(**identity, choices=[choice]))

    return streamed(
        request,
        generations,
        openai_events(
            generations,
            opening=lambda index, _: chunk(index, ChatDelta(role="assistant", content="")),
            delta=lambda index, text: chunk(index, ChatDelta(content=text)),
            closing=lambda index, generation: chunk(index, ChatDelta(), finish_reason(generation)),
            usage=(lambda usage: sse(ChatCompletionChunk(**identity, choices=[], usage=usage)))
            if include_usage
            else None,
        ),
        errors=OPENAI,
    )


# ------------------------------------------------------------------------------------------------ models
@router.get("/v1/models", response_model=None)
async def models(request: Request) -> Response:
    """The one model this server serves."""
    server = server_of(request)
    cards = [ModelCard(id=server.settings.model_name, created=server.created)]
    return JSONResponse(ModelList(data=cards).model_dump())


__all__ = ["ADAPTER", "router"]
