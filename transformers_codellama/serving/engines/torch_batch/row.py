"""What the torch engine's scheduler keeps about one request while it waits and decodes: one row of the batch."""

from __future__ import annotations

from ..base import EngineRequest
from ..sampling import TokenChooser
from ..speculation import Acceptance, NgramIndex, PromptLookup
from .stream import EngineStream


class Row:
    """A request as the scheduler sees it: its stream, how it chooses tokens, and how its drafts fare.

    Args:
        stream: the client's side, where its ids go (and its `request`).
        speculation: the engine's prompt-lookup settings, or None (no drafts).

    Attributes:
        chooser: picks the request's tokens (its sampling settings, generator, penalties and minimum length).
        lookup: the request's prompt and output indexed for drafting (speculation on and the chooser drafts).
        generated: tokens handed to the stream so far.
        acceptance: the running estimate that one of its draft tokens is kept (`Acceptance.update`).
        drafted, accepted: draft tokens proposed and kept for it.
    """

    def __init__(self, stream: EngineStream, speculation: PromptLookup | None) -> None:
        request = stream.request
        self.stream = stream
        self.request: EngineRequest = request
        self.chooser = TokenChooser(
            request.sampling,
            request.prompt_ids,
            request.logprobs,
            stop_ids=request.stop_ids,
            min_new_tokens=request.min_new_tokens,
        )
        self.lookup = (
            NgramIndex(request.prompt_ids, speculation.ngram)
            if speculation is not None and self.chooser.drafts
            else None
        )
        self.generated = 0
        self.acceptance = Acceptance.START
        self.drafted = self.accepted = 0

    @property
    def cancelled(self) -> bool:
        return self.stream.cancelled

    @property
    def room(self) -> int:
        """Tokens it may still generate after its next one."""
        return self.request.max_new_tokens - self.generated - 1

    def reserved(self, spare: int) -> int:
        """The cache positions it may need: its prompt, its new tokens and `spare` (a draft's worth)."""
        return len(self.request.prompt_ids) + self.request.max_new_tokens + spare


__all__ = ["Row"]
