"""How a streamed response is framed on the wire, and how a stream ends when it fails or its client leaves.

Two framings: server-sent events (`data: <json>\\n\\n`; OpenAI, Mistral, llama.cpp and TGI streams) and
newline-delimited JSON (Ollama's). A stream cut by a failure ends with one last event carrying the error in the
protocol's shape (`Framing.error_tail`), written here once for the single-process server and the Ray front alike.
`watch_disconnect` cancels a response's generations as soon as its client goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import StreamingResponse
from starlette.types import Receive

from .errors import ErrorShape, ServingError


def sse_event(data: Any) -> str:
    """One server-sent event carrying `data` as JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def ndjson_line(data: Any) -> str:
    """One line of a newline-delimited JSON stream (Ollama's) carrying `data`."""
    return json.dumps(data, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Framing:
    """One way of framing a stream of JSON events.

    Attributes:
        line: One event's text.
        media_type: The response's `Content-Type`.
    """

    line: Callable[[Any], str]
    media_type: str

    def error_tail(self, shape: ErrorShape, error: ServingError) -> str:
        """The last event of a stream that `error` cut short, in `shape` (the protocol's error body)."""
        return self.line(shape.body(error))

    def response(self, events: AsyncIterator[str]) -> StreamingResponse:
        """A streamed response of `events` that proxies pass unbuffered."""
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type=self.media_type, headers=headers)


SSE = Framing(sse_event, "text/event-stream")
NDJSON = Framing(ndjson_line, "application/x-ndjson")
FRAMINGS = (SSE, NDJSON)


def framing_of(content_type: str) -> Framing | None:
    """The framing of a response with this `Content-Type`, or None for a response that is not a stream."""
    kind = content_type.partition(";")[0].strip().lower()
    return next((framing for framing in FRAMINGS if framing.media_type == kind), None)


class Cancellable(Protocol):
    """What `watch_disconnect` stops: a generation (`adapters.generation.Generation`)."""

    def cancel(self) -> None: ...


@contextlib.asynccontextmanager
async def watch_disconnect(receive: Receive, generations: Iterable[Cancellable]) -> AsyncIterator[None]:
    """While the block runs, cancel `generations` as soon as the client disconnects (`receive` is the ASGI one)."""
    targets = list(generations)

    async def watch() -> None:
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                for generation in targets:
                    generation.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher


__all__ = [
    "FRAMINGS",
    "NDJSON",
    "SSE",
    "Cancellable",
    "Framing",
    "framing_of",
    "ndjson_line",
    "sse_event",
    "watch_disconnect",
]
