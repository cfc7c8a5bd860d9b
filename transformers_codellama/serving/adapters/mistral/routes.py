"""Mistral's FIM completions, `POST /v1/fim/completions`: what `mistralai`'s `client.fim` and Continue's `fimStream`
(for FIM-capable OpenAI-style providers) post.

`prompt` is the code before the cursor and `suffix` the code after it: with a `suffix` (an empty one too) the request
is Meta's infilling layout, without one a completion of `prompt` (an editor template in it still infills). The
answer is a chat completion, `choices[0].message.content` holding the middle; streams are chat chunks
(`choices[0].delta.content`) ended by `data: [DONE]`. The route lives under `/v1`, so its errors are OpenAI's shape,
which `mistralai` reads as the body of its `SDKError`. `min_tokens` holds back the end of the text (the stop ids:
`</s>`, and `▁<EOT>` when infilling) until that many tokens were generated, as `generate`'s `min_new_tokens`; a stop
string still ends the text; more than `max_tokens` (after the server's cap) is a 400 naming `min_tokens`.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from ...http.errors import OPENAI, Fields, ServingError
from ..base import Adapter, streamed, text_prompt
from ..context import run_to_end, server_of
from ..generation import ChoiceRequest
from ..openai.routes import finish_reason, openai_events, response_identity, sse, stop_list, usage_of
from ..openai.schema import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    ChatMessageOut,
    Usage,
)
from ..sampling import sampling_params
from .schema import FimRequest

router = APIRouter()
ADAPTER = Adapter(router, errors=OPENAI)
FIELDS = Fields(
    prompt="prompt",
    suffix="suffix",
    max_tokens="max_tokens",
    engine={"min_new_tokens": "min_tokens", "sampling.seed": "random_seed"},
)


@router.post("/v1/fim/completions", response_model=None)
async def fim_completions(body: FimRequest, request: Request) -> Response:
    """Fill in the middle between `prompt` and `suffix` (or complete `prompt` when there is no suffix)."""
    server = server_of(request)
    server.check_model(body.model)
    max_new_tokens = server.capped(body.max_tokens, server.settings.max_tokens_cap)
    min_new_tokens = body.min_tokens or 0
    if min_new_tokens > max_new_tokens:
        raise ServingError(
            400, f"min_tokens ({min_new_tokens}) must be at most max_tokens ({max_new_tokens})", param="min_tokens"
        )
    prompt = text_prompt(server, body.prompt, suffix=body.suffix, max_new_tokens=max_new_tokens, fields=FIELDS)
    params = sampling_params(
        body.temperature,
        body.top_p,
        None,
        body.random_seed,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
    )
    generations = server.start(
        [
            ChoiceRequest(
                prompt,
                max_new_tokens,
                params,
                stop=stop_list(body.stop),
                fields=FIELDS,
                min_new_tokens=min_new_tokens,
            )
        ]
    )
    identity = response_identity(server, "fim")

    if not body.stream:
        await run_to_end(request, generations)
        [generation] = generations
        choice = ChatChoice(
            index=0, message=ChatMessageOut(content=generation.text), finish_reason=finish_reason(generation)
        )
        return JSONResponse(ChatCompletion(**identity, choices=[choice], usage=usage_of(generations)).model_dump())

    def chunk(delta: ChatDelta, reason: Literal["stop", "length"] | None = None, usage: Usage | None = None) -> str:
        choice = ChatChunkChoice(index=0, delta=delta, finish_reason=reason)
        return sse(ChatCompletionChunk(**identity, choices=[choice], usage=usage))

    return streamed(
        request,
        generations,
        openai_events(
            generations,
            opening=lambda _, __: chunk(ChatDelta(role="assistant", content="")),
            delta=lambda _, text, __: chunk(ChatDelta(content=text)),
            # Mistral puts `usage` on the last chunk, which has a choice: Continue reads `choices[0]` of every chunk.
            closing=lambda _, generation: chunk(ChatDelta(), finish_reason(generation), usage_of(generations)),
            usage=None,
        ),
        errors=OPENAI,
    )


__all__ = ["ADAPTER", "router"]
