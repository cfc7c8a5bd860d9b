"""OpenAI's API: `POST /v1/completions` (completion and fill-in-the-middle), `POST /v1/chat/completions`, `GET /v1/models`.

`/v1/completions` infills when the request has a `suffix` (an empty one too), when its `prompt` is an editor template
(`<PRE> {prefix} <SUF>{suffix} <MID>`, what Continue sends) or holds `<FILL_ME>`; `text` is then the middle only,
decoded as Meta decodes it. Otherwise it completes `[BOS] + encode(prompt)` and `text` is what follows the prompt
(`prompt + text` reads as generated). Streams are OpenAI chunks, `finish_reason` on the last chunk of each choice,
an optional usage chunk, then `data: [DONE]`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from .app import Server, note_usage, run_to_end, sampling, server_of
from .errors import OPENAI, ServingError, error_body
from .generation import Generation, event_stream, merged, sse_event, start_all, watch_disconnect
from .prompts import (
    Prompt,
    chat_prompt,
    check_can_infill,
    check_fits,
    completion_prompt,
    infilling_prompt,
    split_infilling,
)
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
    unsupported_fields,
)

router = APIRouter()
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions


def body_of(payload: Any) -> dict[str, Any]:
    """A response model as JSON data; this server's optional `truncated` field only where it is set."""
    data: dict[str, Any] = payload.model_dump()
    if data.get("truncated", False) is None:
        del data["truncated"]
    return data


def sse(payload: Any) -> str:
    """One server-sent event carrying `payload` (a response model or a dict) as JSON."""
    return sse_event(body_of(payload) if hasattr(payload, "model_dump") else payload)


def refuse_unsupported(request: Any) -> None:
    """A 400 naming the first OpenAI field set to a value this server does not implement."""
    fields = unsupported_fields(request, request.NEUTRAL)
    if fields:
        raise ServingError(400, f"{fields[0]} is not supported by this server", param=fields[0])


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
    request: Request,
    generations: list[Generation],
    *,
    opening: Callable[[int, Generation], str | None],
    delta: Callable[[int, str], str],
    closing: Callable[[int, Generation], str],
    usage: Callable[[Usage], str] | None,
) -> AsyncIterator[str]:
    """An OpenAI stream of `generations` (completions and chat alike): each choice's opening chunk (if any), the text
    deltas as they come, each choice's closing chunk with its finish reason, the usage chunk when asked for, then
    `[DONE]`. An error ends the stream as an OpenAI error event; the server goes on serving."""
    async with watch_disconnect(request.receive, generations):
        try:
            for index, generation in enumerate(generations):
                if (first := opening(index, generation)) is not None:
                    yield first
            async for index, piece in merged(generations):
                if piece.text:
                    yield delta(index, piece.text)
            for index, generation in enumerate(generations):
                yield closing(index, generation)
            note_usage(request, generations)
            if usage is not None:
                yield usage(usage_of(generations))
            yield "data: [DONE]\n\n"
        except ServingError as error:
            yield sse(error_body(OPENAI, error))
        except Exception as error:  # the engine failed this request: tell the client, keep serving others
            yield sse(error_body(OPENAI, ServingError(500, f"generation failed: {error}")))


def finish_reason(generation: Generation) -> str:
    return "stop" if generation.finish_reason == "stop" else "length"


def stop_list(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


# ------------------------------------------------------------------------------------------------ completions
def completion_prompts(server: Server, body: CompletionRequest, max_new_tokens: int) -> list[Prompt]:
    """The prompt of each entry of `body.prompt`, infilling or completion."""
    texts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not texts:
        raise ServingError(400, "prompt must not be an empty list", param="prompt")
    prompts = []
    for text in texts:
        parts = (text, body.suffix) if body.suffix is not None else split_infilling(text)
        if parts is None:
            prompts.append(
                completion_prompt(server.tokenizer, text, max_context=server.max_context, max_new_tokens=max_new_tokens)
            )
            continue
        check_can_infill(server.model, server.tokenizer)
        try:
            prompt = infilling_prompt(
                server.tokenizer,
                *parts,
                max_context=server.max_context,
                max_new_tokens=max_new_tokens,
                text=text,
            )
        except ValueError as error:
            raise ServingError(400, f"prompt: {error}", param="prompt") from None
        prompts.append(prompt)
    return prompts


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> Response:
    """OpenAI completions; fill-in-the-middle with `suffix` or an editor template prompt."""
    server = server_of(request)
    server.check_model(body.model)
    refuse_unsupported(body)
    max_new_tokens = server.capped(body.max_tokens, DEFAULT_MAX_TOKENS)
    prompts = completion_prompts(server, body, max_new_tokens)
    server.check_choices(len(prompts) * body.n, "n")
    stops = stop_list(body.stop)

    def factory(prompt: Prompt, choice: int) -> Callable[[], Generation]:
        seed = None if body.seed is None else body.seed + choice
        params = sampling(body.temperature, body.top_p, None, seed)
        return server.generation(prompt, max_new_tokens=max_new_tokens, sampling=params, stop=stops)

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
                finish_reason=finish_reason(generation),  # type: ignore[arg-type]
            )
            for index, generation in enumerate(generations)
        ]
        return JSONResponse(
            body_of(Completion(**identity, choices=choices, usage=usage_of(generations), truncated=truncated))
        )

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(index: int, text: str, reason: str | None) -> str:
        choice = CompletionChoice(index=index, text=text, finish_reason=reason)  # type: ignore[arg-type]
        return sse(Completion(**identity, choices=[choice], truncated=truncated))

    return event_stream(
        openai_events(
            request,
            generations,
            opening=lambda index, generation: chunk(index, generation.prompt.text, None) if body.echo else None,
            delta=lambda index, text: chunk(index, text, None),
            closing=lambda index, generation: chunk(index, "", finish_reason(generation)),
            usage=(lambda usage: sse(Completion(**identity, choices=[], usage=usage))) if include_usage else None,
        )
    )


# ------------------------------------------------------------------------------------------------ chat
@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """Chat with a Code Llama - Instruct checkpoint through its exact chat template."""
    server = server_of(request)
    server.check_model(body.model)
    refuse_unsupported(body)
    messages = [{"role": message.role, "content": message.text()} for message in body.messages]
    prompt = chat_prompt(server.tokenizer, messages, max_context=server.max_context, max_new_tokens=0)
    wanted = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    max_new_tokens = server.capped(wanted, server.max_context - len(prompt.ids))
    check_fits(len(prompt.ids), max_new_tokens, server.max_context, param="messages")
    server.check_choices(body.n, "n")
    stops = stop_list(body.stop)

    def factory(choice: int) -> Callable[[], Generation]:
        seed = None if body.seed is None else body.seed + choice
        params = sampling(body.temperature, body.top_p, None, seed)
        return server.generation(prompt, max_new_tokens=max_new_tokens, sampling=params, stop=stops)

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
                finish_reason=finish_reason(generation),  # type: ignore[arg-type]
            )
            for index, generation in enumerate(generations)
        ]
        return JSONResponse(ChatCompletion(**identity, choices=choices, usage=usage_of(generations)).model_dump())

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(index: int, delta: ChatDelta, reason: str | None = None) -> str:
        choice = ChatChunkChoice(index=index, delta=delta, finish_reason=reason)  # type: ignore[arg-type]
        return sse(ChatCompletionChunk(**identity, choices=[choice]))

    return event_stream(
        openai_events(
            request,
            generations,
            opening=lambda index, _: chunk(index, ChatDelta(role="assistant", content="")),
            delta=lambda index, text: chunk(index, ChatDelta(content=text)),
            closing=lambda index, generation: chunk(index, ChatDelta(), finish_reason(generation)),
            usage=(lambda usage: sse(ChatCompletionChunk(**identity, choices=[], usage=usage)))
            if include_usage
            else None,
        )
    )


# ------------------------------------------------------------------------------------------------ models
@router.get("/v1/models", response_model=None)
async def models(request: Request) -> Response:
    """The one model this server serves."""
    server = server_of(request)
    cards = [ModelCard(id=server.settings.model_name, created=server.created)]
    return JSONResponse(ModelList(data=cards).model_dump())


__all__ = ["router"]
