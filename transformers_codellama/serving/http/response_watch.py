"""`ResponseWatch`: what the server's pure ASGI layers see of a response, its status and its end."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import Message, Send


class ResponseWatch:
    """Follows one HTTP response through the ASGI `send` it wraps: the status it started with, and its end.

    `on_end(status, seconds)` is called once: when the last body message is sent, or at `end()` for a response cut
    short (the client left mid-stream, or the app failed before it finished). Seconds count from the watch's making.

    Args:
        send: The ASGI `send` of the layer below the server (toward the client).
        on_end: What to do with the status and the response's time, once.
        status: The status reported when the app ends before it starts a response.
    """

    def __init__(self, send: Send, on_end: Callable[[int, float], None], *, status: int = 0) -> None:
        self.status = status
        self._send = send
        self._on_end = on_end
        self._started = time.perf_counter()
        self._ended = False

    async def send(self, message: Message) -> None:
        """Pass `message` on, noting the status it starts the response with and whether it ends the body."""
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.end()

    def end(self) -> None:
        """Report the response's status and time, unless that was done already."""
        if not self._ended:
            self._ended = True
            self._on_end(self.status, time.perf_counter() - self._started)


__all__ = ["ResponseWatch"]
