"""How the engine picks each request's next token: greedy argmax, or sampling with its own seeded generator.

Temperature, top-k and top-p are transformers' own logits warpers, applied in `generate`'s order, and the draw is
`torch.multinomial` on the request's generator: a request with `seed=s` draws exactly what
`torch.manual_seed(s); model.generate(do_sample=True, ...)` draws, alone or in a batch.

Penalties come first, as `generate`'s logits processors come before its warpers: `repetition_penalty` is
transformers' `RepetitionPenaltyLogitsProcessor` over the prompt and the generated ids; `frequency_penalty` and
`presence_penalty` are OpenAI's (`logits[j] -= c[j] * frequency + (c[j] > 0) * presence`, `c` counting the generated
ids); `relative_frequency_penalty` is TGI's (`logits[j] -= penalty * c[j] / len`, over the prompt and generated ids).

A minimum length (`min_new_tokens`) is transformers' `MinNewTokensLengthLogitsProcessor`: until that many tokens were
chosen, the stop ids' scores are -inf (after the penalties, before the warpers), so greedy output equals
`model.generate(min_new_tokens=...)`.

A token's log-probability (`TokenLogprob`) is that of the distribution it was chosen from: the log-softmax of the
scores after the penalties, the minimum length's mask and the warpers, so -inf outside the top-k / top-p nucleus (and
for a stop id held back); a greedy request's is the log-softmax of those scores at temperature 1.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .errors import InvalidRequest

# torch.Generator.manual_seed takes any unsigned 64-bit seed.
MAX_SEED = 2**64 - 1
# The penalty fields of `SamplingParams` and the value of each that leaves the scores alone.
PENALTY_OFF = {
    "repetition_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "relative_frequency_penalty": 0.0,
}
PENALTIES = tuple(PENALTY_OFF)
_NO_IDS = cast(torch.LongTensor, torch.empty((1, 0), dtype=torch.long))


@dataclass(frozen=True)
class SamplingParams:
    """How one request chooses its tokens.

    Attributes:
        temperature: 0 means greedy (argmax of the logits); above 0 the logits are divided by it and sampled.
        top_p: nucleus sampling: keep the most likely tokens whose probabilities add up to `top_p` (1.0 = off).
        top_k: keep only the `top_k` most likely tokens (0 = off).
        seed: seeds the request's own generator, so the same seed and prompt give the same tokens, alone or under
            load; `None` draws a fresh seed.
        repetition_penalty: transformers' (> 0, 1.0 = off), over the prompt and the generated ids.
        frequency_penalty, presence_penalty: OpenAI's (-2..2, 0 = off), over the generated ids.
        relative_frequency_penalty: TGI's `frequency_penalty` (-2..2, 0 = off): the count over the prompt and the
            generated ids divided by their number.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    relative_frequency_penalty: float = 0.0

    @property
    def penalties(self) -> list[str]:
        """The penalty fields set to something other than off (`PENALTIES`), in that order."""
        return [name for name in PENALTIES if getattr(self, name) != PENALTY_OFF[name]]

    @property
    def penalised(self) -> bool:
        """Whether a penalty changes the scores (the chooser then tracks the ids so far)."""
        return bool(self.penalties)

    def check(self) -> None:
        """Raise a one-line `InvalidRequest` naming the first field out of range (`sampling.<field>`)."""
        problem = self._problem()
        if problem is not None:
            name, message = problem
            raise InvalidRequest(f"sampling.{name}", message)

    def _problem(self) -> tuple[str, str] | None:
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)):
            return "temperature", f"temperature must be a number; got {self.temperature!r}"
        if not math.isfinite(self.temperature) or self.temperature < 0:
            return "temperature", f"temperature must be a finite number >= 0; got {self.temperature!r}"
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)):
            return "top_p", f"top_p must be a number; got {self.top_p!r}"
        if not 0 < self.top_p <= 1:
            return "top_p", f"top_p must be in (0, 1]; got {self.top_p!r}"
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            return "top_k", f"top_k must be an integer >= 0; got {self.top_k!r}"
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED
        ):
            return "seed", f"seed must be an integer in [0, 2**64 - 1] or None; got {self.seed!r}"
        if not _number(self.repetition_penalty) or not 0 < self.repetition_penalty < math.inf:
            return "repetition_penalty", (
                f"repetition_penalty must be a finite number > 0; got {self.repetition_penalty!r}"
            )
        for name in PENALTIES[1:]:
            value = getattr(self, name)
            if not _number(value) or not -2 <= value <= 2:
                return name, f"{name} must be a number in [-2, 2]; got {value!r}"
        return None


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TokenLogprob:
    """One chosen token's log-probability and the most likely alternatives, from the distribution it was chosen from.

    Attributes:
        token: the chosen id.
        logprob: its log-probability (-inf if it lay outside the nucleus, which only a draft token can).
        top: the `k` most likely ids and their log-probabilities, most likely first (k as the request asked).
    """

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


class TokenChooser:
    """Chooses one request's tokens from its logits rows; holds that request's processors, generator and ids so far.

    Args:
        params: the request's sampling settings.
        prompt_ids: the prompt (what `repetition_penalty` and TGI's frequency penalty count besides the output).
        logprobs: None: no log-probabilities; k >= 0: `choose` records each token's `TokenLogprob` with the `k` most
            likely alternatives in `last`.
        stop_ids: the ids held back (score -inf) while fewer than `min_new_tokens` tokens were chosen.
        min_new_tokens: how many tokens `choose` chooses before a stop id may be chosen (0: no minimum).
    """

    def __init__(
        self,
        params: SamplingParams,
        prompt_ids: Sequence[int] = (),
        logprobs: int | None = None,
        *,
        stop_ids: Sequence[int] = (),
        min_new_tokens: int = 0,
    ) -> None:
        params.check()
        self.params = params
        self.greedy = params.temperature == 0
        self.penalised = params.penalised
        self.logprobs = logprobs
        self.min_new_tokens = min_new_tokens if stop_ids else 0
        self._held = self.min_new_tokens  # tokens still to choose before the stop ids are let through
        self._stop_ids = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
        self.last: TokenLogprob | None = None  # the record of the last token `choose` chose (logprobs asked)
        self.warpers = LogitsProcessorList()
        self.generator: torch.Generator | None = None
        self._ids: list[int] = list(prompt_ids) if self.penalised else []
        self._prompt_length = len(self._ids)
        self._repetition = (
            RepetitionPenaltyLogitsProcessor(float(params.repetition_penalty))
            if params.repetition_penalty != 1.0
            else None
        )
        if self.greedy:
            return
        # The order of `generate`'s `_get_logits_processor`: temperature, then top-k, then top-p.
        if params.temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(float(params.temperature)))
        if params.top_k:
            self.warpers.append(TopKLogitsWarper(top_k=params.top_k, min_tokens_to_keep=1))
        if params.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=float(params.top_p), min_tokens_to_keep=1))
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(secrets.randbits(63) if params.seed is None else params.seed)

    @property
    def plain_greedy(self) -> bool:
        """Greedy with nothing to track or hold back: the batch's argmax is the token (the scheduler's fast path)."""
        return self.greedy and not self.penalised and self.logprobs is None and not self._held

    @property
    def drafts(self) -> bool:
        """Whether speculation may draft for this request: not while penalties, log-probabilities or a minimum
        length are tracked, which `choose` computes one token at a time."""
        return not self.penalised and self.logprobs is None and not self.min_new_tokens

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from `logits` (one row of the vocabulary's scores, float32)."""
        if self.plain_greedy:
            return int(logits.argmax())
        scores = self._penalise(logits.unsqueeze(0))
        if self._held:
            self._held -= 1
            scores = scores.index_fill(1, self._stop_ids.to(scores.device), -math.inf)
        if self.greedy:
            token = int(scores.argmax())
            if self.logprobs is not None:
                self.last = self._record(torch.log_softmax(scores[0].float(), dim=-1).cpu(), token)
        else:
            probabilities = self._probabilities(scores)
            token = int(torch.multinomial(probabilities, num_samples=1, generator=self.generator)[0, 0])
            if self.logprobs is not None:
                self.last = self._record(torch.log(probabilities[0]), token)
        if self.penalised:
            self._ids.append(token)
        return token

    def verify(self, logits: torch.Tensor, draft: Sequence[int], argmax: Sequence[int]) -> list[int]:
        """The tokens one speculative step gives: the leading draft tokens accepted, then one more chosen token.

        `logits[j]` scores the token after draft token j - 1 (row 0: after the step's input token); `argmax[j]` is
        its argmax. Greedy: a draft token is kept while it equals the argmax, so the tokens are exactly those of
        decoding one at a time. Sampled: the standard accept/reject rule for a draft that is one fixed token
        (q = 1 on it): keep it with probability p(token); on rejection draw from p with that token removed
        (max(0, p - q), renormalised), so every token is distributed exactly as `choose` draws it. A request that
        does not draft (`drafts` False) gets one token from `choose`.
        """
        if not draft:
            return [argmax[0] if self.plain_greedy else self.choose(logits[0])]
        assert self.drafts, "a request with penalties or log-probabilities never drafts"
        tokens: list[int] = []
        if self.greedy:
            for position, token in enumerate(draft):
                if argmax[position] != token:
                    break
                tokens.append(token)
            tokens.append(argmax[len(tokens)])
            return tokens
        for position, token in enumerate(draft):
            probabilities = self._probabilities(logits[position].unsqueeze(0))
            if float(torch.rand((), generator=self.generator)) < float(probabilities[0, token]):
                tokens.append(token)
                continue
            probabilities[0, token] = 0
            tokens.append(int(torch.multinomial(probabilities, num_samples=1, generator=self.generator)[0, 0]))
            return tokens
        tokens.append(self.choose(logits[len(draft)]))
        return tokens

    def _penalise(self, scores: torch.Tensor) -> torch.Tensor:
        """`scores` (1 x vocabulary) after the penalties, over the ids so far."""
        if not self.penalised or not self._ids:
            return scores
        params = self.params
        ids = torch.tensor([self._ids], dtype=torch.long, device=scores.device)
        if self._repetition is not None:
            scores = self._repetition(cast(torch.LongTensor, ids), scores)
        if params.frequency_penalty or params.presence_penalty:
            generated = ids[:, self._prompt_length :]
            counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
            scores = (
                scores - counts * params.frequency_penalty - (counts > 0).to(scores.dtype) * params.presence_penalty
            )
        if params.relative_frequency_penalty:
            counts = torch.zeros_like(scores).scatter_add_(1, ids, torch.ones_like(ids, dtype=scores.dtype))
            scores = scores - counts / ids.shape[1] * params.relative_frequency_penalty
        return scores

    def _probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        # These warpers never read the ids generated so far, so an empty row stands in for them.
        probabilities = torch.softmax(self.warpers(_NO_IDS, scores).float(), dim=-1).cpu()
        if not bool(torch.isfinite(probabilities).all()):
            # A temperature so small that logits / temperature overflow (e.g. 5e-324): its limit is greedy.
            probabilities = torch.zeros_like(probabilities)
            probabilities[0, int(scores.argmax())] = 1.0
        return probabilities

    def _record(self, logprobs: torch.Tensor, token: int) -> TokenLogprob:
        assert self.logprobs is not None
        top = torch.topk(logprobs, min(self.logprobs, logprobs.shape[-1])) if self.logprobs else None
        alternatives = () if top is None else tuple(zip(top.indices.tolist(), top.values.tolist(), strict=True))
        return TokenLogprob(token=token, logprob=float(logprobs[token]), top=alternatives)


__all__ = ["MAX_SEED", "PENALTIES", "PENALTY_OFF", "SamplingParams", "TokenChooser", "TokenLogprob"]
