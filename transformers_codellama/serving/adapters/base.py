"""What every protocol adapter is made of, written once: an adapter is request model → prompt → generations → renderer.

An adapter module (`openai_api`, `llamacpp_api`, `tgi_api`, ...) holds an `APIRouter` and exports `ADAPTER`, an
`Adapter` naming its router and its error shape; the app includes every adapter of its list, so adding a protocol is
one new module and one entry in that list. The helpers below take the protocol's own renderer and field names:

* `refuse_unsupported`: a 400 naming the first field set to a value this server does not implement;
* `text_prompt`: completion or infilling, from a text (and a suffix, where the protocol has one), infilling refused
  on models that cannot infill;
* `ids_prompt`: a prompt the client sent as token ids, used as given;
* `up_to_context`: the budget of a request that set none (llama.cpp's and Ollama's -1): the rest of the context;
* `streamed`: a streamed response of the protocol's events (server-sent events, or Ollama's JSON lines), cancelled
  when the client leaves, ended by an error event in the protocol's shape when generation fails;
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from ...stopping import COMPLETE, INFILL
from ..http.errors import ErrorShape, Fields, ServingError
from ..http.framing import SSE, Framing, watch_disconnect
from .context import Server, note_usage
from .generation import Generation
from .prompts import Prompt, check_fits, completion_prompt, infilling_prompt, split_infilling
from .strict import unsupported_fields
from .token_text import check_vocabulary


@dataclass(frozen=True)
class Adapter:
    """One protocol's endpoints and how its errors look.

    Attributes:
        router: The protocol's routes.
        errors: The error shape of every response on those routes (middleware refusals included).
        paths_under: Path prefixes whose unknown paths answer in this shape too (`/v1/` for OpenAI's 404s).
    """

    router: APIRouter
    errors: ErrorShape
    paths_under: tuple[str, ...] = ()

    @property
    def paths(self) -> set[str]:
        return {path for route in self.router.routes if (path := getattr(route, "path", None)) is not None}


def refuse_unsupported(request: BaseModel, neutral: dict[str, Any], *, prefix: str = "") -> None:
    """A 400 naming the first field of `request` set to something other than its `neutral` value.

    `prefix` is where the protocol nests those fields (TGI's `parameters.`), so the error names the field as sent.
    """
    fields = unsupported_fields(request, neutral)
    if fields:
        name = prefix + fields[0]
        raise ServingError(400, f"{name} is not supported by this server", param=name)


def text_prompt(
    server: Server,
    text: str,
    *,
    suffix: str | None = None,
    max_new_tokens: int,
    fields: Fields,
    max_context: int | None = None,
    suffix_first: bool = False,
) -> Prompt:
    """The prompt of `text`: Meta's infilling prompt of `text` and `suffix` when a `suffix` is given (an empty one
    too) or of the parts of `text` when it asks for infilling (an editor template or `<FILL_ME>`, see
    `prompts.split_infilling`), else a completion of `text`; within `max_context` tokens (the model's by default).
    An infilling prompt is suffix first with `suffix_first` (Meta's SPM layout) and cut to the infilling budget
    (`prompts.infilling_prompt`).

    Raises:
        ServingError: the model cannot infill, the prompt does not fit, or the tokenizer refuses the text (400,
            naming `fields.prompt`).
    """
    context = max_context or server.max_context
    parts = (text, suffix) if suffix is not None else split_infilling(text, fields=fields)
    if parts is None:
        return completion_prompt(
            server.tokenizer, text, max_context=context, max_new_tokens=max_new_tokens, fields=fields
        )
    server.check_can_infill(fields)
    prefix, suffix = parts
    try:
        return infilling_prompt(
            server.tokenizer,
            prefix,
            suffix,
            max_context=context,
            max_new_tokens=max_new_tokens,
            text=text,
            fields=fields,
            suffix_first=suffix_first,
        )
    except ValueError as error:
        raise ServingError(400, f"{fields.prompt}: {error}", param=fields.prompt) from None


def ids_prompt(server: Server, ids: Sequence[int], *, max_new_tokens: int, fields: Fields) -> Prompt:
    """A prompt sent as token ids, used exactly as given (no BOS added). It is an infilling prompt, stopped by
    `▁<EOT>` and decoded as a middle, when it holds `▁<MID>`; else a completion.

    Raises:
        ServingError: an id outside the vocabulary, or the prompt and `max_new_tokens` do not fit the context.
    """
    check_vocabulary(server.tokenizer, ids, fields.prompt)
    check_fits(len(ids), max_new_tokens, server.max_context, fields=fields)
    middle = server.tokenizer.middle_id  # None on a vocabulary without infilling pieces
    mode = INFILL if middle is not None and middle in ids else COMPLETE
    # Its text (what `echo` returns) is the ids' text without the special tokens, as SentencePiece decodes them.
    return Prompt(ids=list(ids), mode=mode, text=server.tokenizer.decode(list(ids), skip_special_tokens=True))


def up_to_context(server: Server, prompt: Prompt, *, max_context: int | None = None) -> int:
    """The budget of a request that set none: what is left of the context after `prompt`, at most the server's cap."""
    left = (max_context or server.max_context) - len(prompt.ids)
    return max(0, min(left, server.settings.max_tokens_cap))


def streamed(
    request: Request,
    generations: Sequence[Generation],
    events: AsyncGenerator[str, None],
    *,
    errors: ErrorShape,
    framing: Framing = SSE,
) -> StreamingResponse:
    """The streamed response of `events` (the protocol's events over `generations`, framed by `framing`: server-sent
    events, or `http.framing.NDJSON` for Ollama's JSON lines).

    The generations are cancelled as soon as the client disconnects; their usage is counted once `events` ended. A
    failure while generating ends the stream with one error event in `errors`' shape; the server goes on serving.
    """

    async def guarded() -> AsyncIterator[str]:
        async with watch_disconnect(request.receive, generations), contextlib.aclosing(events):
            try:
                async for event in events:
                    yield event
                note_usage(request, generations)
            except ServingError as error:
                yield framing.error_tail(errors, error)
            except Exception as error:  # the engine failed this request: tell the client, keep serving others
                yield framing.error_tail(errors, ServingError(500, f"generation failed: {error}"))

    return framing.response(guarded())


__all__ = [
    "Adapter",
    "ids_prompt",
    "refuse_unsupported",
    "streamed",
    "text_prompt",
    "up_to_context",
]
