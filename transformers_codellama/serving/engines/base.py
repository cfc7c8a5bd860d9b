"""The seam between the protocol adapters and an engine, as typed interfaces (`typing.Protocol`).

The adapters and `Generation` talk to an engine only through `Engine` and `TokenStream`: submit a request in token ids,
read its generated ids as they come, cancel it. The torch batch engine (`engines.torch_batch.TorchEngine`) is one
implementation; another engine is one more class satisfying `Engine`, chosen where the command line and the Ray
deployment build engines (`serving.loading`). The request, the features an engine declares, the refusals and the
finish reasons are the vocabulary both sides share, so they live here and in `errors`, and every engine imports them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .errors import EngineBusy, EngineError, InvalidRequest
from .sampling import PENALTIES, SamplingParams, TokenLogprob

FinishReason = Literal["stop", "length", "cancelled", "error"]
STOP: FinishReason = "stop"  # a stop id ended generation
LENGTH: FinishReason = "length"  # `max_new_tokens` (or a time limit) ended it
CANCELLED: FinishReason = "cancelled"  # the client went away or the engine stopped
ERROR: FinishReason = "error"  # the engine failed the request (its stream raised `EngineError`)


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


@dataclass(frozen=True)
class EngineFeatures:
    """What an engine can do beyond greedy and plainly sampled generation; a request asking for more is refused
    before it starts (`unsupported`), never served without it.

    Attributes:
        penalties: the `SamplingParams` penalty fields the engine applies (`sampling.PENALTIES` in full for the torch
            engine).
        logprobs: the most alternatives per token `EngineRequest.logprobs` may ask for (None: no log-probabilities).
        prompt_logprobs: whether `EngineRequest.prompt_logprobs` is served.
        min_new_tokens: whether `EngineRequest.min_new_tokens` above 0 is served.
    """

    penalties: frozenset[str] = frozenset(PENALTIES)
    logprobs: int | None = None
    prompt_logprobs: bool = True
    min_new_tokens: bool = True

    def unsupported(self, request: EngineRequest) -> str | None:
        """The first `EngineRequest` field (dotted into `sampling`) that asks for what this engine lacks, or None."""
        for name in request.sampling.penalties:
            if name not in self.penalties:
                return f"sampling.{name}"
        if request.logprobs is not None and (self.logprobs is None or request.logprobs > self.logprobs):
            return "logprobs"
        if request.prompt_logprobs and not self.prompt_logprobs:
            return "prompt_logprobs"
        if request.min_new_tokens and not self.min_new_tokens:
            return "min_new_tokens"
        return None


@dataclass(frozen=True)
class ModelFacts:
    """What the endpoints report or check about the served model, read once by whoever built the engine.

    Attributes:
        dtype: Its weights' dtype (`bfloat16`), "" when unknown.
        device_type: Where it runs (`cuda`, `cpu`).
        cannot_infill: Why it cannot fill in the middle (`infilling.cannot_infill`), or None when it can.
    """

    dtype: str = ""
    device_type: str = "cpu"
    cannot_infill: str | None = None


class TokenStream(Protocol):
    """The generated ids of one submitted request (`async for token_id in stream`).

    The stop id that ends generation is not yielded but recorded in `stop_id`; `finish_reason` is set once iteration
    ended. `cancel()` ends the request soon; `aclose()` ends it and waits until the engine let go of it.

    With `EngineRequest.logprobs` set, `token_logprobs[i]` is the record of the i-th yielded id, in place before that
    id is yielded; a stop id's record follows the last one. With `prompt_logprobs`, `prompt_logprobs` holds one value
    per prompt id (None for the first) before the first id is yielded.
    """

    @property
    def request(self) -> EngineRequest:
        """What was submitted."""

    @property
    def finish_reason(self) -> FinishReason | None: ...

    @property
    def stop_id(self) -> int | None: ...

    @property
    def cached_tokens(self) -> int:
        """Prompt ids whose state the engine reused (its prefix cache); 0 if it has none."""

    @property
    def token_logprobs(self) -> list[TokenLogprob]: ...

    @property
    def prompt_logprobs(self) -> list[float | None]: ...

    def __aiter__(self) -> AsyncIterator[int]: ...

    def cancel(self) -> None: ...

    async def aclose(self) -> None: ...


class Engine(Protocol):
    """An engine the adapters can stand behind: one model's context and vocabulary, requests in, streams of ids out.

    `submit` is called from the app's event loop; it raises `EngineBusy` when the engine cannot take more and
    `InvalidRequest` (one line, naming the request's field) for a request it refuses: a prompt and budget over
    `max_context`, an id outside the vocabulary, a bad sampling value. Callers check `features.unsupported` first.
    The app starts the engine before the first request and stops it after the last.
    """

    @property
    def max_context(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def features(self) -> EngineFeatures: ...

    def submit(self, request: EngineRequest) -> TokenStream: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Tokenizer(Protocol):
    """What the serving layer uses of a Code Llama tokenizer (`CodeLlamaTokenizerFast` or `CodeLlamaTokenizer`).

    The infilling and turn ids are None on a vocabulary without those pieces (Llama 2's, the 70B's `<step>`).
    """

    bos_token_id: int | None
    eos_token_id: int | None
    chat_template: str | None

    @property
    def all_special_ids(self) -> list[int]: ...

    @property
    def supports_infilling(self) -> bool: ...

    @property
    def middle_id(self) -> int | None: ...

    @property
    def eot_id(self) -> int | None: ...

    @property
    def step_id(self) -> int | None: ...

    def __call__(self, text: Any, **kwargs: Any) -> Mapping[str, Any]: ...

    def __len__(self) -> int: ...

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...

    def decode(self, token_ids: Sequence[int], **kwargs: Any) -> str: ...

    def convert_ids_to_tokens(self, ids: list[int]) -> Any: ...

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


def check_request(request: EngineRequest, *, vocab_size: int, max_context: int) -> None:
    """Raise `InvalidRequest` for a request no engine can run: an empty prompt or one with ids outside the
    vocabulary, a negative budget, a prompt and budget over the context, a minimum length outside the budget, bad
    stop ids, log-probabilities or sampling values. Every engine's `submit` calls it."""
    prompt = request.prompt_ids
    if not isinstance(prompt, (list, tuple)) or not prompt:
        raise InvalidRequest("prompt_ids", "prompt_ids must be a non-empty list of token ids")
    bad = out_of_vocabulary(prompt, vocab_size)
    if bad is not None:
        raise InvalidRequest("prompt_ids", f"prompt_ids holds {prompt[bad]!r}, not a token id in [0, {vocab_size})")
    budget = request.max_new_tokens
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise InvalidRequest("max_new_tokens", f"max_new_tokens must be an integer >= 0; got {budget!r}")
    if len(prompt) + budget > max_context:
        raise InvalidRequest(
            "max_new_tokens",
            f"prompt ({len(prompt)} tokens) + max_new_tokens ({budget}) exceeds the model's context of "
            f"{max_context} tokens",
        )
    if not all(isinstance(token, int) and not isinstance(token, bool) for token in request.stop_ids):
        raise InvalidRequest("stop_ids", f"stop_ids must be token ids; got {request.stop_ids!r}")
    if not isinstance(request.sampling, SamplingParams):
        raise InvalidRequest("sampling", f"sampling must be a SamplingParams; got {type(request.sampling).__name__}")
    request.sampling.check()
    logprobs = request.logprobs
    if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int) or logprobs < 0):
        raise InvalidRequest("logprobs", f"logprobs must be an integer >= 0 or None; got {logprobs!r}")
    least = request.min_new_tokens
    if isinstance(least, bool) or not isinstance(least, int) or not 0 <= least <= budget:
        raise InvalidRequest(
            "min_new_tokens", f"min_new_tokens must be an integer in [0, max_new_tokens ({budget})]; got {least!r}"
        )


def out_of_vocabulary(ids: Sequence[Any], vocab_size: int) -> int | None:
    """The position of the first of `ids` that is not a token id in [0, `vocab_size`), or None when all are."""
    return next(
        (
            index
            for index, token in enumerate(ids)
            if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size
        ),
        None,
    )


__all__ = [
    "CANCELLED",
    "ERROR",
    "LENGTH",
    "STOP",
    "Engine",
    "EngineBusy",
    "EngineError",
    "EngineFeatures",
    "EngineRequest",
    "FinishReason",
    "InvalidRequest",
    "ModelFacts",
    "TokenLogprob",
    "TokenStream",
    "Tokenizer",
    "check_request",
    "out_of_vocabulary",
]
