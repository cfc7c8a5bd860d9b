"""OpenAI's API: `POST /v1/completions` (completion and fill-in-the-middle), `POST /v1/chat/completions`, `GET /v1/models`.

`/v1/completions` infills when the request has a `suffix` (an empty one too), when its `prompt` is an editor template
(`<PRE> {prefix} <SUF>{suffix} <MID>`, what Continue sends) or holds `<FILL_ME>`; `text` is then the middle only,
decoded as Meta decodes it. Otherwise it completes `[BOS] + encode(prompt)` and `text` is what follows the prompt
(`prompt + text` reads as generated). A prompt of token ids (a list of ints, or a list of such lists) is used exactly
as given; it infills when it holds `▁<MID>`. `echo` prepends the prompt's text (decoded, for token ids); with a
`suffix` it is refused, as OpenAI refuses it. Streams are OpenAI chunks, `finish_reason` on the last chunk of each choice,
an optional usage chunk, then `data: [DONE]`.

`logprobs` (completions: 0..5 alternatives; chat: `logprobs` with `top_logprobs` 0..20) are those of the distribution
each token was sampled from, as OpenAI's are: after the penalties, the temperature and the top-p nucleus (-inf
outside it, so alternatives there are left out: a request may get fewer than it asked for); a greedy request's
(temperature 0) are the penalised logits' log-softmax at temperature 1. Streams carry
them on the chunk whose text the tokens made. `best_of` choices are generated and the `n` of each prompt with the
highest cumulative log-probability are returned; it cannot be streamed, as in OpenAI's API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from ...engines.base import Tokenizer
from ...engines.sampling import SamplingParams, TokenLogprob
from ...http.errors import OPENAI, Fields, ServingError
from ...http.framing import sse_event
from ..base import Adapter, ids_prompt, refuse_unsupported, streamed, text_prompt
from ..context import Server, run_to_end, server_of
from ..generation import ChoiceRequest, Generation, merged
from ..prompts import Prompt, chat_prompt, check_fits
from ..sampling import sampling_params
from ..token_text import sampled_alternatives, token_texts
from .schema import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    ChatLogprobs,
    ChatMessageOut,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    ModelCard,
    ModelList,
    PromptTokensDetails,
    TokenLogprobOut,
    TopLogprob,
    Usage,
)

router = APIRouter()
ADAPTER = Adapter(router, errors=OPENAI, paths_under=("/v1/",))
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions
COMPLETION_FIELDS = Fields(
    prompt="prompt", suffix="suffix", max_tokens="max_tokens", engine={"prompt_logprobs": "echo"}
)


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


def token_piece(tokenizer: Tokenizer, token_id: int) -> tuple[str, list[int]]:
    """A token's text as OpenAI shows it (SentencePiece's `▁` as a space; a byte token as `bytes:\\xNN`, OpenAI's
    spelling of a partial character) and its UTF-8 bytes."""
    [shown] = token_texts(tokenizer, [token_id])
    if shown.byte:
        return f"bytes:\\x{shown.data[0]:02x}", list(shown.data)
    return shown.text, list(shown.data)


def completion_logprobs(tokenizer: Tokenizer, records: Sequence[TokenLogprob], offset: int) -> CompletionLogprobs:
    """Legacy completions' `logprobs` of `records`, the first token's text starting at `offset` in the choice."""
    tokens, offsets, tops = [], [], []
    for record in records:
        text = token_piece(tokenizer, record.token)[0]
        tokens.append(text)
        offsets.append(offset)
        offset += len(text)
        top = {token_piece(tokenizer, token)[0]: value for token, value in sampled_alternatives(record)}
        tops.append({**top, text: record.logprob})  # OpenAI always includes the chosen token
    return CompletionLogprobs(
        tokens=tokens,
        token_logprobs=[record.logprob for record in records],
        top_logprobs=tops,
        text_offset=offsets,
    )


def chat_logprobs(tokenizer: Tokenizer, records: Sequence[TokenLogprob]) -> ChatLogprobs:
    """Chat's `logprobs.content` of `records`."""

    def top(token: int, value: float) -> TopLogprob:
        text, raw = token_piece(tokenizer, token)
        return TopLogprob(token=text, logprob=value, bytes=raw)

    content = [
        TokenLogprobOut(
            **top(record.token, record.logprob).model_dump(),
            top_logprobs=[top(token, value) for token, value in sampled_alternatives(record)],
        )
        for record in records
    ]
    return ChatLogprobs(content=content)


async def openai_events(
    generations: list[Generation],
    *,
    opening: Callable[[int, Generation], str | None],
    delta: Callable[[int, str, list[TokenLogprob]], str],
    closing: Callable[[int, Generation], str],
    usage: Callable[[Usage], str] | None,
) -> AsyncGenerator[str, None]:
    """An OpenAI stream of `generations` (completions and chat alike): each choice's opening chunk (if any), the text
    deltas as they come (with the log-probability records of the tokens that made them, when asked for), each
    choice's closing chunk with its finish reason, the usage chunk when asked for, then `[DONE]` (`adapter.streamed`
    adds the error tail)."""
    for index, generation in enumerate(generations):
        if (first := opening(index, generation)) is not None:
            yield first
    pending: dict[int, list[TokenLogprob]] = {}
    async for index, piece in merged(generations):
        records = pending.setdefault(index, [])
        if piece.logprob is not None:
            records.append(piece.logprob)
        if piece.text:
            yield delta(index, piece.text, records)
            pending[index] = []
    for index, generation in enumerate(generations):
        yield closing(index, generation)
    if usage is not None:
        yield usage(usage_of(generations))
    yield "data: [DONE]\n\n"


def finish_reason(generation: Generation) -> Literal["stop", "length"]:
    """OpenAI's `finish_reason`: `stop` when a stop id or string ended the choice, else `length`."""
    return "stop" if generation.finish_reason == "stop" else "length"


def best(generations: Sequence[Generation], n: int) -> list[Generation]:
    """The `n` of `generations` with the highest cumulative log-probability, in their order (all when n = len)."""
    if n >= len(generations):
        return list(generations)
    ranked = sorted(range(len(generations)), key=lambda index: -generations[index].cumulative_logprob)
    return [generations[index] for index in sorted(ranked[:n])]


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


def choice_sampling(body: CompletionRequest | ChatCompletionRequest, choice: int) -> SamplingParams:
    """The engine's sampling settings for choice `choice` of `body`."""
    return sampling_params(
        body.temperature,
        body.top_p,
        None,
        body.seed,
        choice=choice,
        frequency_penalty=body.frequency_penalty,
        presence_penalty=body.presence_penalty,
    )


def response_identity(server: Server, prefix: str) -> dict[str, Any]:
    """What every response and chunk of one request repeats: its id (`prefix`-random), creation time and model."""
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": server.settings.model_name}


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> Response:
    """OpenAI completions; fill-in-the-middle with `suffix` or an editor template prompt."""
    server = server_of(request)
    server.check_model(body.model)
    refuse_unsupported(body, body.NEUTRAL)
    best_of = body.best_of if body.best_of is not None else body.n
    if best_of < body.n:
        raise ServingError(400, f"best_of ({best_of}) must be at least n ({body.n})", param="best_of")
    if body.stream and best_of > body.n:  # best_of == n chooses nothing, so it streams as n alone
        raise ServingError(400, "best_of cannot be used with stream", param="best_of")
    max_new_tokens = server.capped(body.max_tokens, DEFAULT_MAX_TOKENS)
    prompts = completion_prompts(server, body, max_new_tokens)
    server.check_choices(len(prompts) * best_of, "best_of" if body.best_of is not None else "n")
    stops = stop_list(body.stop)
    # best_of ranks choices by their cumulative log-probability, so it needs the records even when none are shown.
    logprobs = body.logprobs if body.logprobs is not None else (0 if best_of > body.n else None)

    generations = server.start(
        [
            ChoiceRequest(
                prompt,
                max_new_tokens,
                choice_sampling(body, choice),
                stop=stops,
                fields=COMPLETION_FIELDS,
                logprobs=logprobs,
            )
            for prompt in prompts
            for choice in range(best_of)
        ]
    )
    identity = response_identity(server, "cmpl")
    truncated = True if any(prompt.truncated for prompt in prompts) else None

    def shown_logprobs(records: Sequence[TokenLogprob], offset: int) -> CompletionLogprobs | None:
        return None if body.logprobs is None else completion_logprobs(server.tokenizer, records, offset)

    if not body.stream:
        await run_to_end(request, generations)
        returned = [
            generation
            for start in range(0, len(generations), best_of)
            for generation in best(generations[start : start + best_of], body.n)
        ]
        choices = []
        for index, generation in enumerate(returned):
            echoed = generation.prompt.text if body.echo else ""
            records = generation.token_logprobs[: generation.completion_tokens]
            choices.append(
                CompletionChoice(
                    index=index,
                    text=echoed + generation.text,
                    logprobs=shown_logprobs(records, len(echoed)),
                    finish_reason=finish_reason(generation),
                )
            )
        # Usage counts every generated choice, those best_of left out too (what was computed).
        return JSONResponse(
            body_of(Completion(**identity, choices=choices, usage=usage_of(generations), truncated=truncated))
        )

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    offsets = [len(generation.prompt.text) if body.echo else 0 for generation in generations]

    def chunk(
        index: int, text: str, reason: Literal["stop", "length"] | None, records: Sequence[TokenLogprob] = ()
    ) -> str:
        shown = shown_logprobs(records, offsets[index]) if reason is None else None
        offsets[index] += len(text)
        choice = CompletionChoice(index=index, text=text, logprobs=shown, finish_reason=reason)
        return sse(Completion(**identity, choices=[choice], truncated=truncated))

    return streamed(
        request,
        generations,
        openai_events(
            generations,
            opening=lambda index, generation: chunk(index, generation.prompt.text, None) if body.echo else None,
            delta=lambda index, text, records: chunk(index, text, None, records),
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
    if body.top_logprobs is not None and not body.logprobs:
        raise ServingError(400, "top_logprobs needs logprobs set to true", param="top_logprobs")
    logprobs = (body.top_logprobs or 0) if body.logprobs else None

    def shown(records: Sequence[TokenLogprob]) -> ChatLogprobs | None:
        return None if logprobs is None else chat_logprobs(server.tokenizer, records)

    generations = server.start(
        [
            ChoiceRequest(
                prompt, max_new_tokens, choice_sampling(body, choice), stop=stops, fields=fields, logprobs=logprobs
            )
            for choice in range(body.n)
        ]
    )
    identity = response_identity(server, "chatcmpl")

    if not body.stream:
        await run_to_end(request, generations)
        choices = [
            ChatChoice(
                index=index,
                message=ChatMessageOut(content=generation.text),
                logprobs=shown(generation.token_logprobs[: generation.completion_tokens]),
                finish_reason=finish_reason(generation),
            )
            for index, generation in enumerate(generations)
        ]
        return JSONResponse(ChatCompletion(**identity, choices=choices, usage=usage_of(generations)).model_dump())

    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def chunk(
        index: int,
        delta: ChatDelta,
        reason: Literal["stop", "length"] | None = None,
        records: Sequence[TokenLogprob] | None = None,
    ) -> str:
        choice = ChatChunkChoice(
            index=index, delta=delta, logprobs=None if records is None else shown(records), finish_reason=reason
        )
        return sse(ChatCompletionChunk(**identity, choices=[choice]))

    return streamed(
        request,
        generations,
        openai_events(
            generations,
            opening=lambda index, _: chunk(index, ChatDelta(role="assistant", content="")),
            delta=lambda index, text, records: chunk(index, ChatDelta(content=text), records=records),
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
