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
* `sampled_alternatives`, `piece_bytes` and `chances`: a record's alternatives the sampled distribution gave a
  chance, a token's bytes, and a `TokenLogprob` as the (id, bytes, log-probability) of the chosen
  token and its alternatives, for the protocols whose log-probabilities carry bytes (llama.cpp's, Ollama's).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from ..stopping import COMPLETE, INFILL
from .context import Server, note_usage
from .engine_api import Tokenizer
from .errors import ErrorShape, Fields, ServingError
from .generation import Generation, event_stream, sse_event, watch_disconnect
from .prompts import Prompt, check_fits, completion_prompt, infilling_prompt, split_infilling
from .protocol import unsupported_fields
from .sampling import TokenLogprob

# float32's lowest value: what llama.cpp sends for log(0), which JSON cannot hold (-inf has no JSON spelling).
LOWEST_LOGPROB = -3.4028234663852886e38


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
    vocabulary = len(server.tokenizer)
    bad = next((token for token in ids if not 0 <= token < vocabulary), None)
    if bad is not None:
        raise ServingError(
            400,
            f"{fields.prompt} holds the token id {bad}, outside the vocabulary (0..{vocabulary - 1})",
            param=fields.prompt,
        )
    check_fits(len(ids), max_new_tokens, server.max_context, fields=fields)
    middle = getattr(server.tokenizer, "middle_id", None)  # None on a vocabulary without infilling pieces
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
    line: Callable[[Any], str] = sse_event,
    media_type: str = "text/event-stream",
) -> StreamingResponse:
    """The streamed response of `events` (the protocol's events over `generations`, framed by `line`: server-sent
    events, or `generation.ndjson_line` for Ollama's JSON lines).

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
                yield line(errors.body(error))
            except Exception as error:  # the engine failed this request: tell the client, keep serving others
                yield line(errors.body(ServingError(500, f"generation failed: {error}")))

    return event_stream(guarded(), media_type)


def piece_bytes(tokenizer: Tokenizer, token_ids: Sequence[int]) -> list[bytes]:
    """The bytes each token stands for, as llama.cpp's `token_to_piece` writes them: SentencePiece's `▁` is a space,
    a byte token `<0xNN>` its one byte (special tokens are their text, `</s>`)."""
    pieces = []
    for piece in tokenizer.convert_ids_to_tokens(list(token_ids)):
        token = str(piece)
        if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            pieces.append(bytes([int(token[3:5], 16)]))
        else:
            pieces.append(token.replace("\u2581", " ").encode())
    return pieces


class Chance(NamedTuple):
    """One token of a log-probability record: its id, its bytes (`piece_bytes`) and its log-probability (never -inf:
    `LOWEST_LOGPROB` stands for it)."""

    id: int
    piece: bytes
    logprob: float


def sampled_alternatives(record: TokenLogprob) -> list[tuple[int, float]]:
    """`record.top` without the ids the distribution sampled from gave no chance (-inf: outside the top-k / top-p
    nucleus), which no client could read back (JSON has no -inf)."""
    return [(token, value) for token, value in record.top if value != -math.inf]


def chances(tokenizer: Tokenizer, record: TokenLogprob) -> tuple[Chance, list[Chance]]:
    """The chosen token of `record` and its alternatives, most likely first. Alternatives the distribution sampled
    from gave no chance (-inf: outside the top-k / top-p nucleus) are left out, so a request may get fewer than it
    asked for, as llama.cpp lists only the candidates its samplers kept."""
    kept = sampled_alternatives(record)
    pieces = piece_bytes(tokenizer, [record.token, *(token for token, _ in kept)])
    values = [record.logprob, *(value for _, value in kept)]
    ids = [record.token, *(token for token, _ in kept)]
    shown = [Chance(i, piece, max(value, LOWEST_LOGPROB)) for i, piece, value in zip(ids, pieces, values, strict=True)]
    return shown[0], shown[1:]


__all__ = [
    "LOWEST_LOGPROB",
    "Adapter",
    "Chance",
    "chances",
    "ids_prompt",
    "piece_bytes",
    "refuse_unsupported",
    "sampled_alternatives",
    "streamed",
    "text_prompt",
    "up_to_context",
]
