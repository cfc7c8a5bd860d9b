"""What every protocol adapter is made of, written once: an adapter is request model → prompt → generations → renderer.

An adapter module (`openai_api`, `llamacpp_api`, `tgi_api`, ...) holds an `APIRouter` and exports `ADAPTER`, an
`Adapter` naming its router and its error shape; the app includes every adapter of its list, so adding a protocol is
one new module and one entry in that list. The helpers below take the protocol's own renderer and field names:

* `refuse_unsupported`: a 400 naming the first field set to a value this server does not implement;
* `text_prompt`: completion or infilling, from a text (and a suffix, where the protocol has one);
* `infilling`: the infilling prompt of a prefix and a suffix, refused on models that cannot infill;
* `streamed`: a server-sent-events response of the protocol's events, cancelled when the client leaves, ended by an
  error event in the protocol's shape when generation fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from .context import Server, note_usage
from .errors import ErrorShape, Fields, ServingError
from .generation import Generation, event_stream, sse_event, watch_disconnect
from .prompts import Prompt, completion_prompt, infilling_prompt, split_infilling
from .protocol import unsupported_fields


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


def infilling(
    server: Server,
    prefix: str,
    suffix: str,
    *,
    max_new_tokens: int,
    fields: Fields,
    text: str | None = None,
    suffix_first: bool = False,
) -> Prompt:
    """Meta's infilling prompt of `prefix` and `suffix` on `server` (suffix first with `suffix_first`, Meta's SPM
    layout), within its budget (`prompts.infilling_prompt`).

    Raises:
        ServingError: the model cannot infill, the budget leaves no room, or the tokenizer refuses the text (400,
            naming `fields.prompt`).
    """
    server.check_can_infill(fields)
    try:
        return infilling_prompt(
            server.tokenizer,
            prefix,
            suffix,
            max_context=server.max_context,
            max_new_tokens=max_new_tokens,
            text=text,
            fields=fields,
            suffix_first=suffix_first,
        )
    except ValueError as error:
        raise ServingError(400, f"{fields.prompt}: {error}", param=fields.prompt) from None


def text_prompt(server: Server, text: str, *, suffix: str | None = None, max_new_tokens: int, fields: Fields) -> Prompt:
    """The prompt of `text`: infilling when a `suffix` is given (an empty one too) or `text` asks for it (an editor
    template or `<FILL_ME>`, see `prompts.split_infilling`), else a completion of `text`."""
    parts = (text, suffix) if suffix is not None else split_infilling(text, fields=fields)
    if parts is None:
        return completion_prompt(
            server.tokenizer, text, max_context=server.max_context, max_new_tokens=max_new_tokens, fields=fields
        )
    return infilling(server, *parts, max_new_tokens=max_new_tokens, fields=fields, text=text)


def streamed(
    request: Request, generations: Sequence[Generation], events: AsyncGenerator[str, None], *, errors: ErrorShape
) -> StreamingResponse:
    """The streamed response of `events` (the protocol's server-sent events over `generations`).

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
                yield sse_event(errors.body(error))
            except Exception as error:  # the engine failed this request: tell the client, keep serving others
                yield sse_event(errors.body(ServingError(500, f"generation failed: {error}")))

    return event_stream(guarded())


__all__ = ["Adapter", "infilling", "refuse_unsupported", "streamed", "text_prompt"]
