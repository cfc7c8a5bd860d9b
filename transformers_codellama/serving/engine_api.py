"""What the protocol adapters need from an engine and a tokenizer, as typed interfaces (`typing.Protocol`).

The adapters and `Generation` talk to an engine only through `Engine` and `TokenStream`: submit a request in token ids,
read its generated ids as they come, cancel it. The in-process batch engine (`engine.Engine`) satisfies them; so can
a second engine (a Ray Serve deployment) standing behind the same adapters. The request, the refusals and the finish
reasons are the vocabulary both sides share, so they live here and the concrete engine imports them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .sampling import SamplingParams, TokenLogprob

FinishReason = Literal["stop", "length", "cancelled", "error"]
STOP: FinishReason = "stop"  # a stop id ended generation
LENGTH: FinishReason = "length"  # `max_new_tokens` (or a time limit) ended it
CANCELLED: FinishReason = "cancelled"  # the client went away or the engine stopped
ERROR: FinishReason = "error"  # the engine failed the request (its stream raised `EngineError`)


class EngineBusy(RuntimeError):
    """The engine's queue of waiting requests is full; try again later."""


class EngineError(RuntimeError):
    """A request failed inside the engine (raised from its stream's iterator); other requests go on."""


@dataclass(frozen=True)
class EngineRequest:
    """One generation request, in token ids.

    Attributes:
        prompt_ids: the complete prompt, BOS and infilling layout included (built by the caller).
        max_new_tokens: at most this many tokens are generated; 0 only prefills the prompt (a cache warm-up) and
            finishes at once with reason "length".
        stop_ids: generation ends when one of these is generated (it is not yielded); see
            `transformers_codellama.stopping.stop_ids`.
        sampling: greedy by default; see `SamplingParams` (penalties included).
        logprobs: None: none; k >= 0: every chosen token (the stop id too) comes with its `TokenLogprob` and the k
            most likely alternatives, from the distribution it was chosen from (`sampling` module docstring).
        prompt_logprobs: the log-probability of each prompt id after the ids before it, from the raw logits of the
            prefill's own forward (the prefix cache is then not used for this prompt).
        min_new_tokens: the stop ids are held back (their scores -inf, transformers' `MinNewTokensLengthLogitsProcessor`)
            until this many tokens were generated; 0 <= `min_new_tokens` <= `max_new_tokens`.
    """

    prompt_ids: list[int]
    max_new_tokens: int
    stop_ids: tuple[int, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    logprobs: int | None = None
    prompt_logprobs: bool = False
    min_new_tokens: int = 0


class TokenStream(Protocol):
    """The generated ids of one submitted request (`async for token_id in stream`).

    The stop id that ends generation is not yielded but recorded in `stop_id`; `finish_reason` is set once iteration
    ended. `cancel()` ends the request soon; `aclose()` ends it and waits until the engine let go of it.

    With `EngineRequest.logprobs` set, `token_logprobs[i]` is the record of the i-th yielded id, in place before that
    id is yielded; a stop id's record follows the last one. With `prompt_logprobs`, `prompt_logprobs` holds one value
    per prompt id (None for the first) before the first id is yielded.
    """

    finish_reason: FinishReason | None
    stop_id: int | None
    cached_tokens: int  # prompt ids whose state the engine reused (its prefix cache); 0 if it has none
    token_logprobs: list[TokenLogprob]
    prompt_logprobs: list[float | None]

    def __aiter__(self) -> AsyncIterator[int]: ...

    def cancel(self) -> None: ...

    async def aclose(self) -> None: ...


class Engine(Protocol):
    """An engine the adapters can stand behind: one model's context size, requests in, streams of ids out.

    `submit` is called from the app's event loop; it raises `EngineBusy` when the engine cannot take more and
    `ValueError` (one line) for a request it refuses (prompt and budget over `max_context`, a bad sampling value).
    The app starts the engine before the first request and stops it after the last.
    """

    @property
    def max_context(self) -> int: ...

    def submit(self, request: EngineRequest) -> TokenStream: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Tokenizer(Protocol):
    """What the serving layer uses of a Code Llama tokenizer (`CodeLlamaTokenizerFast` or `CodeLlamaTokenizer`)."""

    bos_token_id: int | None
    eos_token_id: int | None
    chat_template: str | None

    @property
    def all_special_ids(self) -> list[int]: ...

    @property
    def supports_infilling(self) -> bool: ...

    def __call__(self, text: Any, **kwargs: Any) -> Mapping[str, Any]: ...

    def __len__(self) -> int: ...

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...

    def decode(self, token_ids: Sequence[int], **kwargs: Any) -> str: ...

    def convert_ids_to_tokens(self, ids: list[int]) -> Any: ...

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


__all__ = [
    "CANCELLED",
    "ERROR",
    "LENGTH",
    "STOP",
    "Engine",
    "EngineBusy",
    "EngineError",
    "EngineRequest",
    "FinishReason",
    "TokenLogprob",
    "TokenStream",
    "Tokenizer",
]
