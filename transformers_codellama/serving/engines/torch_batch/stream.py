"""The client's side of one request to the torch engine: the queue its generated ids arrive on, and its results.

The scheduler thread hands ids over through `deliver` (one call per step and event loop, `TorchEngine._flush`); the
client's event loop reads them with `async for`. What the scheduler keeps about the request while it decodes (its
chooser, draft index, acceptance) is the request's `Row`, not the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ..base import CANCELLED, EngineError, EngineRequest, FinishReason
from ..sampling import TokenLogprob


@dataclass(frozen=True)
class StreamEnd:
    """The last item of a stream's queue: why it ended."""

    reason: FinishReason
    stop_id: int | None = None
    error: BaseException | None = None
    logprob: TokenLogprob | None = None  # the stop id's (log-probabilities asked)


Item = int | TokenLogprob | StreamEnd | None  # None: the engine let go of the request (its slot is free)


class EngineStream:
    """The generated token ids of one request, as an async iterator (`async for token in stream`).

    Each id is yielded as soon as the scheduler has chosen it; the stop id that ends generation is not yielded but
    recorded in `stop_id`. After iteration `finish_reason` is "stop", "length" or "cancelled" ("error" when the
    iterator raised `EngineError`). `cancel()` or `await aclose()` ends the request: it leaves the running batch
    before the next decoding step. `token_logprobs` and `prompt_logprobs`: see `engines.base.TokenStream`.

    Args:
        request: what was submitted.
        loop: the client's event loop, where ids are delivered.
        on_cancel: tells the engine (from the client's thread) that this stream was cancelled.
    """

    def __init__(
        self, request: EngineRequest, loop: asyncio.AbstractEventLoop, on_cancel: Callable[[EngineStream], None]
    ) -> None:
        self.request = request
        self.cached_tokens = 0
        self.finish_reason: FinishReason | None = None
        self.stop_id: int | None = None
        self.token_logprobs: list[TokenLogprob] = []
        self.prompt_logprobs: list[float | None] = []
        self.loop = loop
        self.cancelled = False  # read by the scheduler thread between steps
        self._on_cancel = on_cancel
        self._queue: asyncio.Queue[int | TokenLogprob | StreamEnd] = asyncio.Queue()
        self._released = asyncio.Event()

    @property
    def prompt_tokens(self) -> int:
        return len(self.request.prompt_ids)

    def __aiter__(self) -> AsyncIterator[int]:
        return self._tokens()

    async def _tokens(self) -> AsyncIterator[int]:
        try:
            while self.finish_reason is None:
                item = await self._queue.get()
                if self.cancelled and self.finish_reason is None:
                    self.finish_reason = CANCELLED
                    return
                if isinstance(item, StreamEnd):
                    if item.logprob is not None:
                        self.token_logprobs.append(item.logprob)
                    self.finish_reason, self.stop_id = item.reason, item.stop_id
                    if item.error is not None:
                        raise EngineError(f"generation failed: {item.error}") from item.error
                    return
                if isinstance(item, TokenLogprob):
                    self.token_logprobs.append(item)
                    item = item.token
                yield item
        finally:
            if self.finish_reason is None:  # the reader stopped early (break, task cancelled): free the slot
                self.cancel()
                self.finish_reason = CANCELLED

    def cancel(self) -> None:
        """End this request: it leaves the batch before the next decoding step. Safe to call more than once."""
        if self.cancelled or self.finish_reason is not None:
            return
        self.cancelled = True
        self._on_cancel(self)
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
            self.loop.call_soon_threadsafe(self._queue.put_nowait, StreamEnd(CANCELLED))  # wakes a waiting reader

    async def aclose(self) -> None:
        """Cancel this request and wait until the scheduler has freed its slot."""
        self.cancel()
        await self._released.wait()

    def release(self) -> None:
        """From any thread: the engine let go of this request."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._released.set)

    def receive(self, item: Item) -> None:
        """In the client's event loop: take one item from the scheduler."""
        if item is None:
            self._released.set()
        else:
            self._queue.put_nowait(item)


def deliver(items: list[tuple[EngineStream, Item]]) -> None:
    """In the clients' event loop: hand each stream its items."""
    for stream, item in items:
        stream.receive(item)


__all__ = ["EngineStream", "Item", "StreamEnd", "deliver"]
