"""The serving engine: one scheduler thread owns the model and decodes every request's tokens in one batch.

Requests come in as token ids (the protocol layer builds the prompt: BOS, the infilling layout, the chat format) and
go out as a stream of generated token ids. Between two decoding steps the scheduler

1. drops the requests that were cancelled or whose client went away (their slot is free for the next step);
2. admits waiting requests into free slots, those arriving meanwhile too (up to one batch's worth of prefills): each
   one's prompt is prefilled alone, reusing the state of the leading tokens it shares with a recent prompt
   (`PrefixCache`), and its first token is chosen from the prefill's logits and sent at once;
3. runs one forward over the next token of every running request (`DecodeBatch`: continuous batching), and hands
   each request its token, ending it on one of its stop ids or at its `max_new_tokens`.

Each request keeps its own stop ids, sampling settings and generator, so greedy decoding gives the same tokens as
the request served alone, and a seeded sampled request the same tokens as `torch.manual_seed(seed)` + `generate`.
Text (detokenization, stop strings, protocol shapes) is the protocol layer's job, never the engine's.

The scheduler is ours, over the model's own forward and a cache of its own (`DecodeBatch`), rather than transformers' continuous-batching
manager (`init_continuous_batching`), because it measured faster on the target CPU with the same exact tokens
(`benchmarks/bench_serving.py`, dim-256 4-layer model, one torch thread; results in `docs/benchmarks.md`): with 8
requests at once it generated 1.4 to 1.8 times the tokens/s of the warmed-up manager over several runs, both equal to
`generate`'s greedy tokens, and through HTTP with 8 streaming clients `codellama-serve` generated 1.15 to 2.1 times
the tokens/s of `transformers serve --continuous-batching` on the same weights, at a lower median time to first
token. The manager's API also changes between the transformers releases the package supports (5.5 to 5.x).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from .batch import DecodeBatch, cache_from, forward, state_of
from .engine_api import CANCELLED, ERROR, LENGTH, STOP, EngineBusy, EngineError, EngineRequest, FinishReason
from .prefix_cache import KeyValues, PrefixCache
from .sampling import SamplingParams, TokenChooser

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _End:
    """The last item of a stream's queue: why it ended."""

    reason: FinishReason
    stop_id: int | None = None
    error: BaseException | None = None


class EngineStream:
    """The generated token ids of one request, as an async iterator (`async for token in stream`).

    Each id is yielded as soon as the scheduler has chosen it; the stop id that ends generation is not yielded but
    recorded in `stop_id`. After iteration `finish_reason` is "stop", "length" or "cancelled" ("error" when the
    iterator raised `EngineError`). `cancel()` or `await aclose()` ends the request: it leaves the running batch
    before the next decoding step.
    """

    def __init__(self, engine: Engine, request: EngineRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.prompt_tokens = len(request.prompt_ids)
        self.cached_tokens = 0
        self.finish_reason: FinishReason | None = None
        self.stop_id: int | None = None
        self._engine = engine
        self._loop = loop
        self._queue: asyncio.Queue[int | _End] = asyncio.Queue()
        self._released = asyncio.Event()
        self._cancelled = False  # read by the scheduler thread between steps
        # Scheduler-side state.
        self._chooser: TokenChooser | None = None
        self._generated = 0

    def __aiter__(self) -> AsyncIterator[int]:
        return self._tokens()

    async def _tokens(self) -> AsyncIterator[int]:
        try:
            while self.finish_reason is None:
                item = await self._queue.get()
                if self._cancelled and self.finish_reason is None:
                    self.finish_reason = CANCELLED
                    return
                if isinstance(item, _End):
                    self.finish_reason, self.stop_id = item.reason, item.stop_id
                    if item.error is not None:
                        raise EngineError(f"generation failed: {item.error}") from item.error
                    return
                yield item
        finally:
            if self.finish_reason is None:  # the reader stopped early (break, task cancelled): free the slot
                self.cancel()
                self.finish_reason = CANCELLED

    def cancel(self) -> None:
        """End this request: it leaves the batch before the next decoding step. Safe to call more than once."""
        if self._cancelled or self.finish_reason is not None:
            return
        self._cancelled = True
        self._engine._cancelled(self)
        self._put(_End(CANCELLED))  # wakes an iterator waiting for a token

    async def aclose(self) -> None:
        """Cancel this request and wait until the scheduler has freed its slot."""
        self.cancel()
        await self._released.wait()

    def _put(self, item: int | _End) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _release(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._released.set)


def _deliver(items: list[tuple[EngineStream, int | _End | None]]) -> None:
    """In the clients' event loop: hand each stream its items (None: its slot is free)."""
    for stream, item in items:
        if item is None:
            stream._released.set()
        else:
            stream._queue.put_nowait(item)


class Engine:
    """Serves generation requests for one model, batching their decoding steps (continuous batching).

    Args:
        model: a causal LM (`CodeLlamaForCausalLM`, `LlamaForCausalLM`, ...), already on its device, in eval mode.
        tokenizer: its tokenizer (kept for the protocol layer; the engine itself works in ids).
        max_batch_size: requests decoded together at most; more wait in the queue.
        prefix_cache_tokens: tokens of prompt state kept for reuse by the next prompts (0 turns prefix reuse off).
            One token's state takes 2 x layers x key-value heads x head size values: 0.5 MiB for a 7B model in
            bfloat16, so the default budget holds up to 8 GiB there.
        max_queue: waiting requests at most; `submit` raises `EngineBusy` beyond.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = 8,
        prefix_cache_tokens: int = 16384,
        max_queue: int = 256,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1; got {max_batch_size}")
        if prefix_cache_tokens < 0:
            raise ValueError(f"prefix_cache_tokens must be >= 0; got {prefix_cache_tokens}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1; got {max_queue}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.max_context: int = int(model.config.max_position_embeddings)
        self.vocab_size: int = int(model.config.vocab_size)
        self.prefix_cache = PrefixCache(prefix_cache_tokens)
        self._batch: DecodeBatch[EngineStream] = DecodeBatch(model, rows=max_batch_size)
        self._waiting: deque[EngineStream] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._threads = torch.get_num_threads()
        self._stopping = False
        # What the scheduler hands to streams, sent to their event loops in one call per loop (`_flush`): one
        # wake-up per step rather than one per token keeps the loop thread off the scheduler's back.
        self._outbox: list[tuple[EngineStream, int | _End | None]] = []
        self.steps = 0  # decoding steps run so far (each one forward over the running batch)
        self.prefills = 0  # prompts prefilled so far

    # Public API.

    @property
    def running(self) -> bool:
        """Whether the scheduler thread is running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def active(self) -> int:
        """Requests waiting or decoding now."""
        with self._condition:
            return len(self._waiting) + len(self._batch)

    def start(self) -> None:
        """Start the scheduler thread (which from now on owns the model). Does nothing if it runs already."""
        if self.running:
            return
        self._stopping = False
        # torch's intra-op thread count is per thread (OpenMP): the scheduler uses the one its starter set.
        self._threads = torch.get_num_threads()
        self._thread = threading.Thread(target=self._run, name="codellama-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the scheduler; streams still waiting or decoding end with finish_reason "cancelled"."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._end_all(_End(CANCELLED))

    def submit(self, request: EngineRequest) -> EngineStream:
        """Queue `request`; returns its stream. Call from inside a running asyncio event loop.

        Raises:
            ValueError: the prompt is empty or holds ids outside the vocabulary, `max_new_tokens` is negative,
                prompt + `max_new_tokens` exceeds `max_context`, or a sampling value is out of range.
            EngineBusy: `max_queue` requests are waiting already.
        """
        self._check(request)
        stream = EngineStream(self, request, asyncio.get_running_loop())
        stream._chooser = TokenChooser(request.sampling)
        with self._condition:
            if len(self._waiting) >= self.max_queue:
                raise EngineBusy(f"the engine's queue is full ({self.max_queue} requests waiting)")
            self._waiting.append(stream)
            self._condition.notify()
        return stream

    def _check(self, request: EngineRequest) -> None:
        prompt = request.prompt_ids
        if not isinstance(prompt, (list, tuple)) or not prompt:
            raise ValueError("prompt_ids must be a non-empty list of token ids")
        for token in prompt:
            if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < self.vocab_size:
                raise ValueError(f"prompt_ids holds {token!r}, not a token id in [0, {self.vocab_size})")
        budget = request.max_new_tokens
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0; got {budget!r}")
        if len(prompt) + budget > self.max_context:
            raise ValueError(
                f"prompt ({len(prompt)} tokens) + max_new_tokens ({budget}) exceeds the model's context of "
                f"{self.max_context} tokens"
            )
        if not all(isinstance(token, int) and not isinstance(token, bool) for token in request.stop_ids):
            raise ValueError(f"stop_ids must be token ids; got {request.stop_ids!r}")
        if not isinstance(request.sampling, SamplingParams):
            raise ValueError(f"sampling must be a SamplingParams; got {type(request.sampling).__name__}")
        request.sampling.check()

    def _cancelled(self, stream: EngineStream) -> None:
        """A stream was cancelled: drop it from the queue now if it waits there, else wake the scheduler."""
        with self._condition:
            if stream in self._waiting:
                self._waiting.remove(stream)
                stream._release()
            self._condition.notify()

    # The scheduler thread.

    def _run(self) -> None:
        torch.set_num_threads(self._threads)
        try:
            with torch.inference_mode():
                while True:
                    with self._condition:
                        while not self._stopping and not self._waiting and not len(self._batch):
                            self._condition.wait()
                        if self._stopping:
                            return
                    self._drop_cancelled()
                    # Requests that arrive during a prefill are admitted before the next step rather than after it
                    # (a step of a full batch takes about half a prefill); at most one batch's worth of prefills,
                    # so the running requests never wait longer than that.
                    prefills = 0
                    while prefills < self.max_batch_size and (stream := self._next_waiting()) is not None:
                        self._admit(stream)
                        prefills += 1
                    self._flush()
                    if len(self._batch):
                        self._decode_step()
                        self._flush()
        except BaseException as error:  # never leave a client waiting forever on a dead scheduler
            logger.exception("the engine's scheduler stopped")
            self._end_all(_End(ERROR, error=error))
            raise

    def _next_waiting(self) -> EngineStream | None:
        """The first waiting request, taken off the queue, if the batch has a free slot for it."""
        with self._condition:
            if self._waiting and len(self._batch) < self.max_batch_size:
                return self._waiting.popleft()
            return None

    def _end_all(self, end: _End) -> None:
        with self._condition:
            streams = list(self._waiting) + list(self._batch.rows)
            self._waiting.clear()
            self._batch.keep([])
        for stream in streams:
            self._finish(stream, end)
        self._flush()

    def _flush(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[EngineStream, int | _End | None]]] = {}
        for stream, item in self._outbox:
            by_loop.setdefault(stream._loop, []).append((stream, item))
        self._outbox = []
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the clients' event loop is closed: nobody reads these streams any more
                for stream, _ in items:
                    stream._cancelled = True

    def _finish(self, stream: EngineStream, end: _End) -> None:
        self._outbox += [(stream, end), (stream, None)]

    def _drop_cancelled(self) -> None:
        keep = [index for index, stream in enumerate(self._batch.rows) if not stream._cancelled]
        if len(keep) < len(self._batch):
            dropped = [stream for stream in self._batch.rows if stream._cancelled]
            with self._condition:
                self._batch.keep(keep)
            for stream in dropped:
                self._outbox.append((stream, None))

    def _admit(self, stream: EngineStream) -> None:
        """Prefill `stream`'s prompt, choose its first token, and add it to the batch unless it ended there."""
        if stream._cancelled:
            self._outbox.append((stream, None))
            return
        try:
            state, logits = self._prefill(stream)
            if stream.request.max_new_tokens == 0:
                self._finish(stream, _End(LENGTH))
                return
            token = self._choose(stream, logits, int(logits.argmax()))
        except Exception as error:  # this request's failure; the others go on
            logger.exception("prefill failed")
            self._finish(stream, _End(ERROR, error=error))
            return
        # The first token goes out now, before the next admitted prompt's prefill and the next step.
        self._flush()
        if token is not None:
            with self._condition:
                self._batch.join(stream, state, token)

    def _prefill(self, stream: EngineStream) -> tuple[KeyValues, torch.Tensor]:
        """The prompt's state (keys and values, batch 1) and the logits after its last token."""
        prompt = stream.request.prompt_ids
        self.prefills += 1
        cached, state = self.prefix_cache.lookup(prompt)
        stream.cached_tokens = cached
        cache = cache_from(state) if state is not None else DynamicCache()
        device = self.model.device
        output = forward(self.model, cache, input_ids=torch.tensor([prompt[cached:]], device=device), logits_to_keep=1)
        full = state_of(cache)
        self.prefix_cache.store(prompt, full)
        return full, output.logits[0, -1].float()

    def _choose(self, stream: EngineStream, logits: torch.Tensor, argmax: int) -> int | None:
        """Choose `stream`'s next token from `logits` (whose argmax is `argmax`) and hand it over; returns it, or
        None when the stream ended with it."""
        assert stream._chooser is not None
        token = argmax if stream._chooser.greedy else stream._chooser.choose(logits)
        if token in stream.request.stop_ids:
            self._finish(stream, _End(STOP, stop_id=token))
            return None
        stream._generated += 1
        self._outbox.append((stream, token))
        if stream._generated >= stream.request.max_new_tokens:
            self._finish(stream, _End(LENGTH))
            return None
        return token

    def _decode_step(self) -> None:
        rows = list(self._batch.rows)
        self.steps += 1
        try:
            logits = self._batch.step()
        except Exception as error:  # a failed forward leaves the batch's state unknown: end its requests
            logger.exception("decoding step failed")
            with self._condition:
                self._batch.keep([])
            for stream in rows:
                self._finish(stream, _End(ERROR, error=error))
            return
        argmax = logits.argmax(dim=-1).tolist()  # every greedy row's token at once
        keep, tokens, cancelled = [], [], []
        for index, stream in enumerate(rows):
            if stream._cancelled:
                cancelled.append(stream)
                continue
            try:
                token = self._choose(stream, logits[index], argmax[index])
            except Exception as error:
                logger.exception("choosing a token failed")
                self._finish(stream, _End(ERROR, error=error))
                continue
            if token is not None:
                keep.append(index)
                tokens.append(token)
        with self._condition:
            self._batch.keep(keep)
            self._batch.feed(tokens)
        for stream in cancelled:  # only now is the slot free
            self._outbox.append((stream, None))


__all__ = ["Engine", "EngineBusy", "EngineError", "EngineRequest", "EngineStream", "SamplingParams"]
