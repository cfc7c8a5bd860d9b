"""The torch batch engine: one scheduler thread owns the model and decodes every request's tokens in one batch.

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
import logging
import threading
import time
from collections import deque
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel

from ...defaults import DEFAULT_MAX_QUEUE, DEFAULT_PREFIX_CACHE_TOKENS
from ..base import (
    CANCELLED,
    ERROR,
    LENGTH,
    STOP,
    EngineBusy,
    EngineFeatures,
    EngineRequest,
    ModelFacts,
    Tokenizer,
    check_request,
)
from ..host import available_memory
from ..speculation import Acceptance, DraftPlanner, PromptLookup
from .batch import DecodeBatch, cache_from, forward, state_of
from .prefix_cache import KeyValues, PrefixCache
from .row import Row
from .stream import EngineStream, Item, StreamEnd, deliver

logger = logging.getLogger(__name__)

MAX_ROWS = 256  # the most requests decoded together when the batch is sized from memory (vLLM's max_num_seqs)
# The share of the memory available at start-up that the running batch's keys and values may take by default.
CACHE_MEMORY_SHARE = 0.25
# Prefills between two steps stop once they have taken this many steps' time (or `MIN_PREFILL_SECONDS`).
PREFILL_STEPS, MIN_PREFILL_SECONDS = 4, 0.05
STEP_TIME_WEIGHT = 0.2  # the weight of the last step in the running average of a step's time (about 5 steps)
# Everything this engine serves: every penalty, prompt log-probabilities, a minimum length; alternatives up to the
# vocabulary (the protocols cap them lower).
FEATURES = EngineFeatures(logprobs=2**31 - 1)


def cache_bytes_per_token(config: Any, dtype: torch.dtype) -> int:
    """The bytes one token's keys and values take over all of a model's layers."""
    heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    return 2 * int(config.num_hidden_layers) * heads * head_dim * torch.empty((), dtype=dtype).element_size()


def model_facts(model: PreTrainedModel, tokenizer: Tokenizer) -> ModelFacts:
    """The facts the endpoints report of a loaded transformers `model` and its `tokenizer`."""
    from ....infilling import cannot_infill

    parameter = next(model.parameters(), None)
    return ModelFacts(
        dtype=str(getattr(parameter, "dtype", "")).removeprefix("torch."),
        device_type=str(getattr(getattr(parameter, "device", None), "type", "cpu")),
        cannot_infill=cannot_infill(model.config, tokenizer),
    )


class TorchEngine:
    """Serves generation requests for one transformers model, batching their decoding steps (continuous batching).

    Args:
        model: a causal LM (`CodeLlamaForCausalLM`, `LlamaForCausalLM`, ...), already on its device, in eval mode.
        max_batch_size: requests decoded together at most; more wait in the queue. 0 (the default) sizes the batch
            from `cache_memory` instead, up to `MAX_ROWS`.
        prefix_cache_tokens: tokens of prompt state kept for reuse by the next prompts (0 turns prefix reuse off).
            One token's state takes 2 x layers x key-value heads x head size values: 0.5 MiB for a 7B model in
            bfloat16, so the default budget holds up to 8 GiB there.
        max_queue: waiting requests at most; `submit` raises `EngineBusy` beyond.
        cache_memory: bytes the running batch's keys and values may take (default: `CACHE_MEMORY_SHARE` of the
            memory available on the model's device at start-up). A request joins the batch only while every running
            request's prompt + `max_new_tokens` (+ a draft's worth with speculation) fits, all rows as long as the
            longest (their layout).
        speculation: prompt-lookup drafting (`PromptLookup`), or None for one token per request and step.
    """

    features = FEATURES

    def __init__(
        self,
        model: PreTrainedModel,
        *,
        max_batch_size: int = 0,
        prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS,
        max_queue: int = DEFAULT_MAX_QUEUE,
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
        self.max_batch_size = max_batch_size or MAX_ROWS
        self.max_queue = max_queue
        self.speculation = speculation
        # A row's cache may run a draft's worth past its prompt and budget while the draft is verified.
        self._spare = speculation.draft_tokens if speculation is not None else 0
        parameter = next(model.parameters())
        if cache_memory is None:
            cache_memory = int(CACHE_MEMORY_SHARE * available_memory(parameter.device))
        self.cache_memory = cache_memory
        # The cache's budget in tokens: every row is as wide as the longest (right-aligned), so rows x widest.
        self.cache_tokens = max(1, cache_memory // cache_bytes_per_token(model.config, parameter.dtype))
        self._max_context = int(model.config.max_position_embeddings)
        self._vocab_size = int(model.config.vocab_size)
        self.prefix_cache = PrefixCache(prefix_cache_tokens)
        self._batch: DecodeBatch[Row] = DecodeBatch(model, rows=min(self.max_batch_size, 8))
        self._waiting: deque[Row] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._threads = torch.get_num_threads()
        self._stopping = False
        # What the scheduler hands to streams, sent to their event loops in one call per loop (`_flush`): one
        # wake-up per step rather than one per token keeps the loop thread off the scheduler's back.
        self._outbox: list[tuple[EngineStream, Item]] = []
        self.steps = 0  # decoding steps run so far (each one forward over the running batch)
        self.prefills = 0  # prompts prefilled so far
        self.drafted = self.accepted = 0  # draft tokens proposed and accepted so far (speculation)
        self._step_seconds = 0.0  # a running average of a decoding step's time
        self._planner = DraftPlanner()
        self._acceptance = Acceptance()

    # Public API.

    @property
    def max_context(self) -> int:
        """The model's context: a prompt and its budget fit in it."""
        return self._max_context

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

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
        self._end_all(StreamEnd(CANCELLED))

    def submit(self, request: EngineRequest) -> EngineStream:
        """Queue `request`; returns its stream. Call from inside a running asyncio event loop.

        Raises:
            InvalidRequest: the prompt is empty or holds ids outside the vocabulary, `max_new_tokens` is negative,
                prompt + `max_new_tokens` exceeds `max_context`, `min_new_tokens` is outside [0, `max_new_tokens`], or
                a sampling value is out of range (`engines.base.check_request`).
            EngineBusy: `max_queue` requests are waiting already.
        """
        check_request(request, vocab_size=self._vocab_size, max_context=self._max_context)
        stream = EngineStream(request, asyncio.get_running_loop(), self._cancelled)
        row = Row(stream, self.speculation)
        with self._condition:
            if len(self._waiting) >= self.max_queue:
                raise EngineBusy(f"the engine's queue is full ({self.max_queue} requests waiting)")
            self._waiting.append(row)
            self._condition.notify()
        return stream

    def _cancelled(self, stream: EngineStream) -> None:
        """A stream was cancelled: drop it from the queue now if it waits there, else wake the scheduler."""
        with self._condition:
            row = next((row for row in self._waiting if row.stream is stream), None)
            if row is not None:
                self._waiting.remove(row)
                stream.release()
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
                    while time.perf_counter() - started < allowance and (row := self._next_waiting()) is not None:
                        self._admit(row)
                    self._flush()
                    if len(self._batch):
                        self._decode_step()
                        self._flush()
        except BaseException as error:  # never leave a client waiting forever on a dead scheduler
            logger.exception("the engine's scheduler stopped")
            self._end_all(StreamEnd(ERROR, error=error))
            raise

    def _next_waiting(self) -> Row | None:
        """The first waiting request, taken off the queue, if the batch has room for it (rows and cache memory)."""
        with self._condition:
            if not self._waiting or len(self._batch) >= self.max_batch_size:
                return None
            rows = self._batch.rows
            if rows:
                widest = max(row.reserved(self._spare) for row in [*rows, self._waiting[0]])
                if (len(rows) + 1) * widest > self.cache_tokens:
                    return None
            return self._waiting.popleft()

    def _end_all(self, end: StreamEnd) -> None:
        with self._condition:
            rows = list(self._waiting) + list(self._batch.rows)
            self._waiting.clear()
            self._batch.keep([])
        for row in rows:
            self._finish(row, end)
        self._flush()

    def _flush(self) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[EngineStream, Item]]] = {}
        for stream, item in self._outbox:
            by_loop.setdefault(stream.loop, []).append((stream, item))
        self._outbox = []
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(deliver, items)
            except RuntimeError:  # the clients' event loop is closed: nobody reads these streams any more
                for stream, _ in items:
                    stream.cancelled = True

    def _finish(self, row: Row, end: StreamEnd) -> None:
        self._outbox += [(row.stream, end), (row.stream, None)]

    def _drop_cancelled(self) -> None:
        keep = [index for index, row in enumerate(self._batch.rows) if not row.cancelled]
        if len(keep) < len(self._batch):
            dropped = [row for row in self._batch.rows if row.cancelled]
            with self._condition:
                self._batch.keep(keep)
            for row in dropped:
                self._outbox.append((row.stream, None))

    def _admit(self, row: Row) -> None:
        """Prefill `row`'s prompt, choose its first token, and add it to the batch unless it ended there."""
        if row.cancelled:
            self._outbox.append((row.stream, None))
            return
        try:
            state, logits = self._prefill(row.stream)
            if row.request.max_new_tokens == 0:
                self._finish(row, StreamEnd(LENGTH))
                return
            token = self._choose(row, logits, int(logits.argmax()))
        except Exception as error:  # this request's failure; the others go on
            logger.exception("prefill failed")
            self._finish(row, StreamEnd(ERROR, error=error))
            return
        # The first token goes out now, before the next admitted prompt's prefill and the next step.
        self._flush()
        row.acceptance = self._acceptance.start()
        if token is not None:
            with self._condition:
                self._batch.join(row, state, token)

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

    def _choose(self, row: Row, logits: torch.Tensor, argmax: int) -> int | None:
        """Choose `row`'s next token from `logits` (whose argmax is `argmax`) and hand it over; returns it, or None
        when the request ended with it."""
        token = argmax if row.chooser.plain_greedy else row.chooser.choose(logits)
        if not self._emit(row, token):
            return None
        if row.lookup is not None:
            row.lookup.extend([token])
        return token

    def _emit(self, row: Row, token: int) -> bool:
        """Hand `token` to `row`'s stream, or end it (a stop id, or its last token); whether it goes on."""
        chooser = row.chooser
        record = chooser.last if chooser.logprobs is not None else None
        if token in row.request.stop_ids:
            self._finish(row, StreamEnd(STOP, stop_id=token, logprob=record))
            return False
        row.generated += 1
        self._outbox.append((row.stream, token if record is None else record))
        if row.generated >= row.request.max_new_tokens:
            self._finish(row, StreamEnd(LENGTH))
            return False
        return True

    def _drafts(self, rows: list[Row]) -> list[list[int]] | None:
        """Each row's draft (speculation on), capped so that its tokens never pass its `max_new_tokens`; None when
        no row has one (a plain step)."""
        assert self.speculation is not None
        limit = self.speculation.draft_tokens
        drafts = []
        for row in rows:
            room = min(limit, row.room)
            drafts.append(row.lookup.draft(room) if row.lookup is not None and not row.cancelled else [])
        if not any(drafts):
            return None
        length = self._planner.length(drafts, [row.acceptance for row in rows], limit)
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
            for row in rows:
                self._finish(row, StreamEnd(ERROR, error=error))
            return
        argmax = logits.argmax(dim=-1).tolist()  # every greedy row's tokens at once
        keep, tokens, accepted, cancelled = [], [0] * len(rows), [0] * len(rows), []
        for index, row in enumerate(rows):
            if row.cancelled:
                cancelled.append(row)
                continue
            draft = drafts[index] if drafts is not None else []
            try:
                chosen = row.chooser.verify(logits[index], draft, argmax[index])
            except Exception as error:
                logger.exception("choosing a token failed")
                self._finish(row, StreamEnd(ERROR, error=error))
                continue
            accepted[index] = len(chosen) - 1
            if draft:
                row.acceptance = self._acceptance.update(row.acceptance, len(draft), len(chosen) - 1)
            row.drafted += len(draft)
            row.accepted += len(chosen) - 1
            self.drafted += len(draft)
            self.accepted += len(chosen) - 1
            if all(self._emit(row, token) for token in chosen):
                if row.lookup is not None:
                    row.lookup.extend(chosen)
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
        weight = 1.0 if self.steps == 1 else STEP_TIME_WEIGHT
        self._step_seconds += weight * (seconds - self._step_seconds)
        for row in cancelled:  # only now is the slot free
            self._outbox.append((row.stream, None))


__all__ = ["CACHE_MEMORY_SHARE", "FEATURES", "MAX_ROWS", "TorchEngine", "cache_bytes_per_token", "model_facts"]
