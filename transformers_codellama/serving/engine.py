"""The serving engine: one scheduler thread owns the model and decodes every request's tokens in one batch.

Requests come in as token ids (the protocol layer builds the prompt: BOS, the infilling layout, the chat format) and
go out as a stream of generated token ids. Between two decoding steps the scheduler

1. drops the requests that were cancelled or whose client went away (their slot is free for the next step);
2. admits waiting requests, those arriving meanwhile too, while the batch's cache fits its memory budget and the
   prefills since the last step have taken less than a few steps' time (so the running requests never stall for
   long): each one's prompt is prefilled alone, reusing the state of the leading tokens it shares with a recent
   prompt (`PrefixCache`), and its first token is chosen from the prefill's logits and sent at once;
3. runs one forward over the next token of every running request (`DecodeBatch`: continuous batching), and hands
   each request its token, ending it on one of its stop ids or at its `max_new_tokens`. With prompt-lookup
   speculation (`PromptLookup`) a request's next token comes with a draft copied from its own earlier tokens, verified
   in the same forward: a step then gives it every draft token the model agrees with, plus one.

The batch is sized as vLLM's scheduler sizes it, by tokens rather than by requests: a request joins while every
running request's cache (prompt + `max_new_tokens`, the rows aligned to the longest) fits in the memory the cache may
use, up to `MAX_ROWS` rows. Per-step host work grows with the running requests only, never with the waiting ones.

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
import math
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from .batch import DecodeBatch, cache_from, forward, state_of
from .engine_api import CANCELLED, ERROR, LENGTH, STOP, EngineBusy, EngineError, EngineRequest, FinishReason
from .prefix_cache import KeyValues, PrefixCache
from .sampling import SamplingParams, TokenChooser, TokenLogprob
from .speculation import DraftPlanner, NgramIndex, PromptLookup

logger = logging.getLogger(__name__)

MAX_ROWS = 256  # the most requests decoded together when the batch is sized from memory (vLLM's max_num_seqs)
# The share of the memory available at start-up that the running batch's keys and values may take by default.
CACHE_MEMORY_SHARE = 0.25
# Prefills between two steps stop once they have taken this many steps' time (or `MIN_PREFILL_SECONDS`).
PREFILL_STEPS, MIN_PREFILL_SECONDS = 4, 0.05
# The lowest acceptance a new request's estimate starts from (speculation on).
ACCEPTANCE_FLOOR = 0.3


def default_threads() -> int:
    """The torch intra-op thread count that does not oversubscribe the cores this process may use.

    Decoding is a chain of small matrix products, each split over torch's threads (OpenMP), which spin at every join
    for the slowest of them: one thread that shares its core with another busy process stalls them all (on 2 cores
    with one other busy process, two threads decoded 45 times slower than one). So: the cores this process may run
    on (its CPU affinity, which containers and `taskset` narrow), less those the recent load keeps busy (the 1-minute
    load average), never more than torch's own default (the physical cores) and at least one.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        busy = 0.0
    free = cores - math.ceil(busy - 0.25) if busy > 0.25 else cores  # a load under a quarter of a core is idle
    return max(1, min(cores, free, torch.get_num_threads()))


def cache_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """The bytes one token's keys and values take over all of a model's layers."""
    heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    return 2 * int(config.num_hidden_layers) * heads * head_dim * torch.empty((), dtype=dtype).element_size()


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on `device` now (the accelerator's free memory, or the host's available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


@dataclass(frozen=True)
class _End:
    """The last item of a stream's queue: why it ended."""

    reason: FinishReason
    stop_id: int | None = None
    error: BaseException | None = None
    logprob: TokenLogprob | None = None  # the stop id's (log-probabilities asked)


class EngineStream:
    """The generated token ids of one request, as an async iterator (`async for token in stream`).

    Each id is yielded as soon as the scheduler has chosen it; the stop id that ends generation is not yielded but
    recorded in `stop_id`. After iteration `finish_reason` is "stop", "length" or "cancelled" ("error" when the
    iterator raised `EngineError`). `cancel()` or `await aclose()` ends the request: it leaves the running batch
    before the next decoding step. `token_logprobs` and `prompt_logprobs`: see `engine_api.TokenStream`.
    """

    def __init__(self, engine: Engine, request: EngineRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.prompt_tokens = len(request.prompt_ids)
        self.cached_tokens = 0
        self.finish_reason: FinishReason | None = None
        self.stop_id: int | None = None
        self.token_logprobs: list[TokenLogprob] = []
        self.prompt_logprobs: list[float | None] = []
        self._engine = engine
        self._loop = loop
        self._queue: asyncio.Queue[int | TokenLogprob | _End] = asyncio.Queue()
        self._released = asyncio.Event()
        self._cancelled = False  # read by the scheduler thread between steps
        # Scheduler-side state.
        self._chooser: TokenChooser | None = None
        self._generated = 0
        self._lookup: NgramIndex | None = None  # the prompt and output, for drafting (speculation on)
        self.drafted = self.accepted = 0  # draft tokens proposed and accepted for this request
        self._acceptance = 0.6  # a running estimate of the chance that one of its draft tokens is kept

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
        if self._cancelled or self.finish_reason is not None:
            return
        self._cancelled = True
        self._engine._cancelled(self)
        self._put(_End(CANCELLED))  # wakes an iterator waiting for a token

    async def aclose(self) -> None:
        """Cancel this request and wait until the scheduler has freed its slot."""
        self.cancel()
        await self._released.wait()

    def _put(self, item: int | TokenLogprob | _End) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _release(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._released.set)


def _deliver(items: list[tuple[EngineStream, int | TokenLogprob | _End | None]]) -> None:
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
        max_batch_size: requests decoded together at most; more wait in the queue. 0 (the default) sizes the batch
            from `cache_memory` instead, up to `MAX_ROWS`.
        prefix_cache_tokens: tokens of prompt state kept for reuse by the next prompts (0 turns prefix reuse off).
            One token's state takes 2 x layers x key-value heads x head size values: 0.5 MiB for a 7B model in
            bfloat16, so the default budget holds up to 8 GiB there.
        max_queue: waiting requests at most; `submit` raises `EngineBusy` beyond.
        cache_memory: bytes the running batch's keys and values may take (default: `CACHE_MEMORY_SHARE` of the
            memory available on the model's device at start-up). A request joins the batch only while every running
            request's prompt + `max_new_tokens` fits, all rows as long as the longest (their layout).
        speculation: prompt-lookup drafting (`PromptLookup`), or None for one token per request and step.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch_size: int = 0,
        prefix_cache_tokens: int = 16384,
        max_queue: int = 256,
        cache_memory: int | None = None,
        speculation: PromptLookup | None = None,
    ) -> None:
        if max_batch_size < 0:
            raise ValueError(f"max_batch_size must be >= 0 (0: sized from memory); got {max_batch_size}")
        if cache_memory is not None and cache_memory < 1:
            raise ValueError(f"cache_memory must be a positive number of bytes; got {cache_memory}")
        if speculation is not None:
            speculation.check()
        if prefix_cache_tokens < 0:
            raise ValueError(f"prefix_cache_tokens must be >= 0; got {prefix_cache_tokens}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1; got {max_queue}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size or MAX_ROWS
        self.max_queue = max_queue
        self.speculation = speculation
        parameter = next(model.parameters())
        if cache_memory is None:
            cache_memory = int(CACHE_MEMORY_SHARE * available_memory(parameter.device))
        self.cache_memory = cache_memory
        # The cache's budget in tokens: every row is as wide as the longest (right-aligned), so rows x widest.
        self.cache_tokens = max(1, cache_memory // cache_bytes_per_token(model.config, parameter.dtype))
        self.max_context: int = int(model.config.max_position_embeddings)
        self.vocab_size: int = int(model.config.vocab_size)
        self.prefix_cache = PrefixCache(prefix_cache_tokens)
        self._batch: DecodeBatch[EngineStream] = DecodeBatch(model, rows=min(self.max_batch_size, 8))
        self._waiting: deque[EngineStream] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._threads = torch.get_num_threads()
        self._stopping = False
        # What the scheduler hands to streams, sent to their event loops in one call per loop (`_flush`): one
        # wake-up per step rather than one per token keeps the loop thread off the scheduler's back.
        self._outbox: list[tuple[EngineStream, int | TokenLogprob | _End | None]] = []
        self.steps = 0  # decoding steps run so far (each one forward over the running batch)
        self.prefills = 0  # prompts prefilled so far
        self.drafted = self.accepted = 0  # draft tokens proposed and accepted so far (speculation)
        self._step_seconds = 0.0  # a running average of a decoding step's time
        self._planner = DraftPlanner()
        # The chance that a draft token is kept, over every request's recent drafts: where a request's own estimate
        # starts (short requests end before their own would have learnt that drafts do not pay here), never below
        # ACCEPTANCE_FLOOR, so that each request still tries a draft or two and a workload whose drafts do come
        # true is found again.
        self._acceptance = 0.6

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
                prompt + `max_new_tokens` exceeds `max_context`, `min_new_tokens` is outside [0, `max_new_tokens`], or
                a sampling value is out of range.
            EngineBusy: `max_queue` requests are waiting already.
        """
        self._check(request)
        stream = EngineStream(self, request, asyncio.get_running_loop())
        stream._chooser = TokenChooser(
            request.sampling,
            request.prompt_ids,
            request.logprobs,
            stop_ids=request.stop_ids,
            min_new_tokens=request.min_new_tokens,
        )
        if self.speculation is not None and stream._chooser.drafts:
            stream._lookup = NgramIndex(request.prompt_ids, self.speculation.ngram)
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
        logprobs = request.logprobs
        if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int) or logprobs < 0):
            raise ValueError(f"logprobs must be an integer >= 0 or None; got {logprobs!r}")
        least = request.min_new_tokens
        if isinstance(least, bool) or not isinstance(least, int) or not 0 <= least <= budget:
            raise ValueError(f"min_new_tokens must be an integer in [0, max_new_tokens ({budget})]; got {least!r}")

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
                    # Requests that arrive during a prefill are admitted before the next step rather than after it,
                    # until the prefills have taken a few steps' time: the running requests wait no longer.
                    started = time.perf_counter()
                    allowance = max(MIN_PREFILL_SECONDS, PREFILL_STEPS * self._step_seconds)
                    while time.perf_counter() - started < allowance and (stream := self._next_waiting()) is not None:
                        self._admit(stream)
                    self._flush()
                    if len(self._batch):
                        self._decode_step()
                        self._flush()
        except BaseException as error:  # never leave a client waiting forever on a dead scheduler
            logger.exception("the engine's scheduler stopped")
            self._end_all(_End(ERROR, error=error))
            raise

    def _next_waiting(self) -> EngineStream | None:
        """The first waiting request, taken off the queue, if the batch has room for it (rows and cache memory)."""
        with self._condition:
            if not self._waiting or len(self._batch) >= self.max_batch_size:
                return None
            rows = self._batch.rows
            if rows:
                widest = max(_reserved(stream) for stream in [*rows, self._waiting[0]])
                if (len(rows) + 1) * widest > self.cache_tokens:
                    return None
            return self._waiting.popleft()

    def _end_all(self, end: _End) -> None:
        with self._condition:
            streams = list(self._waiting) + list(self._batch.rows)
            self._waiting.clear()
            self._batch.keep([])
        for stream in streams:
            self._finish(stream, end)
        self._flush()

    def _flush(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[EngineStream, int | TokenLogprob | _End | None]]] = {}
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
        stream._acceptance = max(self._acceptance, ACCEPTANCE_FLOOR)
        if token is not None:
            with self._condition:
                self._batch.join(stream, state, token)

    def _prefill(self, stream: EngineStream) -> tuple[KeyValues, torch.Tensor]:
        """The prompt's state (keys and values, batch 1) and the logits after its last token."""
        prompt = stream.request.prompt_ids
        wanted = stream.request.prompt_logprobs
        self.prefills += 1
        # Every prompt position's logits come from this forward, so a prompt whose log-probabilities are asked for
        # is prefilled whole rather than from the prefix cache.
        cached, state = (0, None) if wanted else self.prefix_cache.lookup(prompt)
        stream.cached_tokens = cached
        cache = cache_from(state) if state is not None else DynamicCache()
        ids = torch.tensor([prompt[cached:]], device=self.model.device)
        output = forward(self.model, cache, input_ids=ids, logits_to_keep=0 if wanted else 1)
        if wanted:
            logprobs = torch.log_softmax(output.logits[0, :-1].float(), dim=-1)
            stream.prompt_logprobs = [None, *logprobs.gather(1, ids[0, 1:, None])[:, 0].tolist()]
        full = state_of(cache)
        self.prefix_cache.store(prompt, full)
        return full, output.logits[0, -1].float()

    def _choose(self, stream: EngineStream, logits: torch.Tensor, argmax: int) -> int | None:
        """Choose `stream`'s next token from `logits` (whose argmax is `argmax`) and hand it over; returns it, or
        None when the stream ended with it."""
        assert stream._chooser is not None
        token = argmax if stream._chooser.plain_greedy else stream._chooser.choose(logits)
        if not self._emit(stream, token):
            return None
        if stream._lookup is not None:
            stream._lookup.extend([token])
        return token

    def _emit(self, stream: EngineStream, token: int) -> bool:
        """Hand `token` to `stream`, or end it (a stop id, or its last token); whether it goes on."""
        chooser = stream._chooser
        record = chooser.last if chooser is not None and chooser.logprobs is not None else None
        if token in stream.request.stop_ids:
            self._finish(stream, _End(STOP, stop_id=token, logprob=record))
            return False
        stream._generated += 1
        self._outbox.append((stream, token if record is None else record))
        if stream._generated >= stream.request.max_new_tokens:
            self._finish(stream, _End(LENGTH))
            return False
        return True

    def _drafts(self, rows: list[EngineStream]) -> list[list[int]] | None:
        """Each row's draft (speculation on), capped so that its tokens never pass its `max_new_tokens`; None when
        no row has one (a plain step)."""
        assert self.speculation is not None
        limit = self.speculation.draft_tokens
        drafts = []
        for stream in rows:
            room = min(limit, stream.request.max_new_tokens - stream._generated - 1)
            drafts.append(stream._lookup.draft(room) if stream._lookup is not None and not stream._cancelled else [])
        if not any(drafts):
            return None
        length = self._planner.length(drafts, [stream._acceptance for stream in rows], limit)
        return [draft[:length] for draft in drafts] if length else None

    def _decode_step(self) -> None:
        rows = list(self._batch.rows)
        self.steps += 1
        started = time.perf_counter()
        drafts = self._drafts(rows) if self.speculation is not None else None
        try:
            logits = self._batch.step().unsqueeze(1) if drafts is None else self._batch.speculate(drafts)
        except Exception as error:  # a failed forward leaves the batch's state unknown: end its requests
            logger.exception("decoding step failed")
            with self._condition:
                self._batch.keep([])
            for stream in rows:
                self._finish(stream, _End(ERROR, error=error))
            return
        argmax = logits.argmax(dim=-1).tolist()  # every greedy row's tokens at once
        keep, tokens, accepted, cancelled = [], [0] * len(rows), [0] * len(rows), []
        for index, stream in enumerate(rows):
            if stream._cancelled:
                cancelled.append(stream)
                continue
            assert stream._chooser is not None
            draft = drafts[index] if drafts is not None else []
            try:
                chosen = stream._chooser.verify(logits[index], draft, argmax[index])
            except Exception as error:
                logger.exception("choosing a token failed")
                self._finish(stream, _End(ERROR, error=error))
                continue
            accepted[index] = len(chosen) - 1
            if draft:
                kept = (len(chosen) - 1) / len(draft)
                stream._acceptance = 0.7 * stream._acceptance + 0.3 * kept
                self._acceptance = 0.9 * self._acceptance + 0.1 * kept
            stream.drafted += len(draft)
            stream.accepted += len(chosen) - 1
            self.drafted += len(draft)
            self.accepted += len(chosen) - 1
            if all(self._emit(stream, token) for token in chosen):
                if stream._lookup is not None:
                    stream._lookup.extend(chosen)
                keep.append(index)
                tokens[index] = chosen[-1]
        with self._condition:
            if drafts is not None:
                self._batch.accept(accepted)
            self._batch.feed(tokens)
            self._batch.keep(keep)
        # An average over the last steps or so: what a step costs at the batch's present size. The planner is fitted
        # to the whole step, drafting and verifying included, not to the forward alone: that host work is part of
        # what a longer draft costs.
        seconds = time.perf_counter() - started
        self._planner.observe(logits.shape[0] * logits.shape[1], seconds)
        self._step_seconds = seconds if self.steps == 1 else 0.8 * self._step_seconds + 0.2 * seconds
        for stream in cancelled:  # only now is the slot free
            self._outbox.append((stream, None))


def _reserved(stream: EngineStream) -> int:
    """The cache positions `stream` may need: its prompt, its new tokens, a draft's worth of spare."""
    return stream.prompt_tokens + stream.request.max_new_tokens + 8


__all__ = [
    "Engine",
    "EngineBusy",
    "EngineError",
    "EngineRequest",
    "EngineStream",
    "PromptLookup",
    "SamplingParams",
    "default_threads",
]
