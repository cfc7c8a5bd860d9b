"""One choice of one request: a prompt submitted to the engine, its ids turned into text, and why it ended.

Every endpoint goes through `Generation`: it builds the `EngineRequest` (stop ids by mode, sampling), maps the
engine's refusals to 4xx/503, decodes the ids incrementally (`TextStream`), applies stop strings and a time limit
(llama.cpp's `t_max_predict_ms`) by closing the engine stream, and records counts and timings. It talks to the engine
only through `engine_api`, so any engine satisfying `engine_api.Engine` can stand behind it. `watch_disconnect` cancels
generations whose client went away (`http.framing`), so an abandoned request leaves the batch within one decoding
step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from starlette.types import Receive

from ...stopping import CHAT, stop_ids
from ..engines.base import LENGTH, STOP, Engine, EngineBusy, EngineRequest, FinishReason, InvalidRequest, Tokenizer
from ..engines.sampling import SamplingParams, TokenLogprob
from ..http.errors import GENERIC_FIELDS, Fields, ServingError
from ..http.framing import watch_disconnect
from .prompts import Prompt
from .text_stream import TextStream

HELD_TEXT = -1  # `Delta.token_id` of the text held back until generation ended (no id of its own)


@dataclass(frozen=True)
class Delta:
    """What one generated id adds: the id and the text that can be sent for it (may be "").

    The last delta of a generation may carry `HELD_TEXT` instead of an id: text held back to the end. `logprob` is
    the id's record when the generation asked for log-probabilities.
    """

    token_id: int
    text: str
    logprob: TokenLogprob | None = None


@dataclass(frozen=True)
class ChoiceRequest:
    """What one choice of a request asks for; `Generation` runs it.

    Attributes:
        prompt: The prompt (its mode picks the stop ids and how text is decoded).
        max_new_tokens: The most ids to generate (0: prefill only).
        sampling: Temperature, top-p/top-k and seed.
        stop: Stop strings; the text ends before the first one.
        time_limit_ms: Stop once this long has passed since the first id and a newline was generated (llama.cpp's
            `t_max_predict_ms`).
        fields: The request's field names, for the refusal of a budget the engine cannot run.
        logprobs: None, or how many alternatives each token's `TokenLogprob` lists (`EngineRequest.logprobs`).
        prompt_logprobs: Whether the prompt ids' log-probabilities are wanted (`EngineRequest.prompt_logprobs`).
        min_new_tokens: The stop ids are held back until this many ids were generated (`EngineRequest.min_new_tokens`).
    """

    prompt: Prompt
    max_new_tokens: int
    sampling: SamplingParams
    stop: Sequence[str] = ()
    time_limit_ms: int | None = None
    fields: Fields = GENERIC_FIELDS
    logprobs: int | None = None
    prompt_logprobs: bool = False
    min_new_tokens: int = 0


class Generation:
    """Runs `choice` on `engine`; iterate it for `Delta`s, then read `text`, `finish_reason` and the counts.

    Args:
        engine: The running engine.
        tokenizer: The model's tokenizer.
        choice: What the choice asks for (prompt, budget, sampling, stop strings, log-probabilities).

    Raises:
        ServingError: The engine lacks a feature the choice asks for or refused it (400, naming the client's field),
            or its queue is full (503).
    """

    def __init__(self, engine: Engine, tokenizer: Tokenizer, choice: ChoiceRequest) -> None:
        prompt = choice.prompt
        self.prompt = prompt
        self.sampling = choice.sampling
        self.max_new_tokens = choice.max_new_tokens
        self._stream_text = TextStream(tokenizer, keep_leading_space=prompt.mode != CHAT, stop=choice.stop)
        self._time_limit = None if not choice.time_limit_ms else choice.time_limit_ms / 1000
        self._started = time.perf_counter()
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self.finish_reason: FinishReason | None = None
        self.stop_id: int | None = None
        self.hit_time_limit = False
        request = EngineRequest(
            prompt_ids=list(prompt.ids),
            max_new_tokens=choice.max_new_tokens,
            stop_ids=tuple(stop_ids(tokenizer, prompt.mode)),
            sampling=choice.sampling,
            logprobs=choice.logprobs,
            prompt_logprobs=choice.prompt_logprobs,
            min_new_tokens=choice.min_new_tokens,
        )
        lacking = engine.features.unsupported(request)
        if lacking is not None:
            name = choice.fields.engine_field(lacking)
            raise ServingError(400, f"{name} is not supported by this server's engine", param=name)
        try:
            self._stream = engine.submit(request)
        except EngineBusy as error:
            raise ServingError(503, f"the server is busy: {error}", code="server_overloaded") from None
        except InvalidRequest as error:
            raise ServingError(400, str(error), param=choice.fields.engine_field(error.field)) from None

    # ------------------------------------------------------------------------------------------------ results
    @property
    def text(self) -> str:
        """The text so far (the whole text once iteration ended)."""
        return self._stream_text.text

    @property
    def token_ids(self) -> list[int]:
        """The generated ids (stop id excluded)."""
        return self._stream_text.decoder.ids

    @property
    def token_logprobs(self) -> list[TokenLogprob]:
        """One record per generated id (`token_ids`), then the stop id's if one ended generation (logprobs asked)."""
        return self._stream.token_logprobs[: len(self.token_ids) + (self.stop_id is not None)]

    @property
    def prompt_logprobs(self) -> list[float | None]:
        """One log-probability per prompt id, None for the first (prompt_logprobs asked)."""
        return self._stream.prompt_logprobs

    @property
    def cumulative_logprob(self) -> float:
        """The sum of the generated ids' log-probabilities (logprobs asked): how `best_of` ranks choices."""
        return sum(record.logprob for record in self.token_logprobs[: len(self.token_ids)])

    @property
    def stop_string(self) -> str | None:
        """The stop string that ended the text, if one did."""
        return self._stream_text.stop_string

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt.ids)

    @property
    def cached_tokens(self) -> int:
        """Prompt ids whose state came from the engine's prefix cache."""
        return self._stream.cached_tokens

    @property
    def completion_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def prompt_seconds(self) -> float:
        """From submission to the first generated id (or to the end, when nothing was generated)."""
        end = self.first_token_at or self.finished_at or time.perf_counter()
        return end - self._started

    @property
    def generation_seconds(self) -> float:
        """From the first generated id to the end."""
        if self.first_token_at is None:
            return 0.0
        return (self.finished_at or time.perf_counter()) - self.first_token_at

    # ------------------------------------------------------------------------------------------------ running
    def cancel(self) -> None:
        """Stop generating (the client went away); the engine frees the slot within one decoding step."""
        self._stream.cancel()

    async def __aiter__(self) -> AsyncIterator[Delta]:
        saw_newline = False
        try:
            async for token_id in self._stream:
                if self.first_token_at is None:
                    self.first_token_at = time.perf_counter()
                text = self._stream_text.push(token_id)
                saw_newline = saw_newline or "\n" in text
                records = self._stream.token_logprobs
                yield Delta(token_id, text, records[len(self.token_ids) - 1] if records else None)
                if self.stop_string is not None:
                    break
                if (
                    self._time_limit is not None
                    and saw_newline
                    and time.perf_counter() - self.first_token_at > self._time_limit
                ):
                    self.hit_time_limit = True
                    break
        finally:
            await self._stream.aclose()
            self.finished_at = time.perf_counter()
        rest = self._stream_text.finish()
        if rest:
            yield Delta(HELD_TEXT, rest)
        if self.stop_string is not None:
            self.finish_reason = STOP
        elif self.hit_time_limit:
            self.finish_reason = LENGTH
        else:
            self.finish_reason = self._stream.finish_reason or LENGTH
            self.stop_id = self._stream.stop_id

    async def run(self) -> Generation:
        """Generate to the end without streaming; returns self."""
        async for _ in self:
            pass
        return self


def start_all(factories: Sequence[Callable[[], Generation]]) -> list[Generation]:
    """Submit every choice, or none: if one is refused, those already submitted are cancelled."""
    started: list[Generation] = []
    try:
        for factory in factories:
            started.append(factory())
    except BaseException:
        for generation in started:
            generation.cancel()
        raise
    return started


async def run_all(receive: Receive, generations: Sequence[Generation]) -> list[Generation]:
    """Run `generations` concurrently to the end (non-streamed responses), cancelling them if the client leaves."""
    async with watch_disconnect(receive, generations):
        return list(await asyncio.gather(*(generation.run() for generation in generations)))


async def merged(generations: Sequence[Generation]) -> AsyncIterator[tuple[int, Delta]]:
    """The deltas of several concurrent generations as they come, tagged with their index (for `n` > 1 streams)."""
    if len(generations) == 1:
        async for delta in generations[0]:
            yield 0, delta
        return
    queue: asyncio.Queue[tuple[int, Delta | Exception | None]] = asyncio.Queue()

    async def pump(index: int, generation: Generation) -> None:
        try:
            async for delta in generation:
                await queue.put((index, delta))
            await queue.put((index, None))
        except Exception as error:  # handed to the consumer, which re-raises it
            await queue.put((index, error))

    tasks = [asyncio.create_task(pump(index, generation)) for index, generation in enumerate(generations)]
    try:
        running = len(tasks)
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        for generation in generations:
            generation.cancel()


__all__ = [
    "HELD_TEXT",
    "ChoiceRequest",
    "Delta",
    "Generation",
    "merged",
    "run_all",
    "start_all",
]
