"""How the engine picks each request's next token: greedy argmax, or sampling with its own seeded generator.

Temperature, top-k and top-p are transformers' own logits warpers, applied in `generate`'s order, and the draw is
`torch.multinomial` on the request's generator: a request with `seed=s` draws exactly what
`torch.manual_seed(s); model.generate(do_sample=True, ...)` draws, alone or in a batch.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

# torch.Generator.manual_seed takes any unsigned 64-bit seed.
MAX_SEED = 2**64 - 1
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
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None

    def check(self) -> None:
        """Raise a one-line `ValueError` naming the first field out of range."""
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)):
            raise ValueError(f"temperature must be a number; got {self.temperature!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be a finite number >= 0; got {self.temperature!r}")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)):
            raise ValueError(f"top_p must be a number; got {self.top_p!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1]; got {self.top_p!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0; got {self.top_k!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED
        ):
            raise ValueError(f"seed must be an integer in [0, 2**64 - 1] or None; got {self.seed!r}")


class TokenChooser:
    """Chooses one request's tokens from its logits rows; holds that request's warpers and generator."""

    def __init__(self, params: SamplingParams) -> None:
        params.check()
        self.greedy = params.temperature == 0
        self.warpers = LogitsProcessorList()
        self.generator: torch.Generator | None = None
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

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from `logits` (one row of the vocabulary's scores, float32)."""
        if self.greedy:
            return int(logits.argmax())
        return int(torch.multinomial(self._probabilities(logits), num_samples=1, generator=self.generator)[0, 0])

    def verify(self, logits: torch.Tensor, draft: Sequence[int], argmax: Sequence[int]) -> list[int]:
        """The tokens one speculative step gives: the leading draft tokens accepted, then one more chosen token.

        `logits[j]` scores the token after draft token j - 1 (row 0: after the step's input token); `argmax[j]` is
        its argmax. Greedy: a draft token is kept while it equals the argmax, so the tokens are exactly those of
        decoding one at a time. Sampled: the standard accept/reject rule for a draft that is one fixed token
        (q = 1 on it): keep it with probability p(token); on rejection draw from p with that token removed
        (max(0, p - q), renormalised), so every token is distributed exactly as `choose` draws it.
        """
        tokens: list[int] = []
        if self.greedy:
            for position, token in enumerate(draft):
                if argmax[position] != token:
                    break
                tokens.append(token)
            tokens.append(argmax[len(tokens)])
            return tokens
        for position, token in enumerate(draft):
            probabilities = self._probabilities(logits[position])
            if float(torch.rand((), generator=self.generator)) < float(probabilities[0, token]):
                tokens.append(token)
                continue
            probabilities[0, token] = 0
            tokens.append(int(torch.multinomial(probabilities, num_samples=1, generator=self.generator)[0, 0]))
            return tokens
        tokens.append(self.choose(logits[len(draft)]))
        return tokens

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        # These warpers never read the ids generated so far, so an empty row stands in for them.
        scores = self.warpers(_NO_IDS, logits.unsqueeze(0))
        probabilities = torch.softmax(scores, dim=-1).cpu()
        if not bool(torch.isfinite(probabilities).all()):
            # A temperature so small that logits / temperature overflow (e.g. 5e-324): its limit is greedy.
            probabilities = torch.zeros_like(probabilities)
            probabilities[0, int(logits.argmax())] = 1.0
        return probabilities


__all__ = ["MAX_SEED", "SamplingParams", "TokenChooser"]
