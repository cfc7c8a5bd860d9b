"""Generated token ids to text, incrementally, as the non-streamed decode reads it.

Three rules make streamed text equal to the text decoded at the end:

* SentencePiece decodes a piece's leading `▁` as a space except at the very start of a decode. A window of ids decoded
  after Meta's sentinel (`"☺"`, the ids `decode_infill` prepends) reads as it does inside the whole sequence; the
  sentinel's text is then dropped. Chat answers are decoded alone, as Meta's `chat_completion` does, so their first
  piece loses its leading space.
* Byte-fallback pieces (`<0xE2>`...) spell one character over several ids; a window whose decode ends in U+FFFD is held
  back until the character is complete (as llama.cpp's `validate_utf8` and `tokenizers`' `DecodeStream` do). As
  SentencePiece decodes a run of byte pieces as a whole (one invalid byte makes the whole run U+FFFD), a run is sent
  once a piece that is not a byte ends it.
* Stop strings: text that could still become the start of a stop string is held back; once one matches, the text
  ends before it.

Each step decodes a short window (`prefix_offset..`), never the whole sequence, so streaming stays linear.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from ...infilling import SENTINEL
from ...sentencepiece_backend import is_byte_piece
from ..engines.base import Tokenizer

_INCOMPLETE = "\ufffd"
_BYTE_IDS: weakref.WeakKeyDictionary[Any, frozenset[int]] = weakref.WeakKeyDictionary()


def _byte_ids(tokenizer: Tokenizer) -> frozenset[int]:
    """The ids of `tokenizer`'s byte-fallback pieces (`<0x00>`...`<0xFF>`), found once per tokenizer."""
    found = _BYTE_IDS.get(tokenizer)
    if found is None:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        found = frozenset(index for index, piece in enumerate(pieces) if is_byte_piece(piece))
        _BYTE_IDS[tokenizer] = found
    return found


class IncrementalDecoder:
    """Decodes generated ids one at a time into text deltas whose concatenation is the whole decode.

    Args:
        tokenizer: A Code Llama tokenizer (its `decode`, special tokens skipped).
        keep_leading_space: True for completions and infilled middles (the text that follows the prompt, as
            `decode_infill` decodes a middle); False for chat answers (decoded alone).
    """

    def __init__(self, tokenizer: Tokenizer, *, keep_leading_space: bool = True) -> None:
        self._tokenizer = tokenizer
        self._keep_leading_space = keep_leading_space
        self._context: list[int] = list(tokenizer.encode(SENTINEL, add_special_tokens=False))
        self._context_chars = len(self._decode(self._context))
        self._byte_ids = _byte_ids(tokenizer)
        self.ids: list[int] = []
        self._prefix_offset = 0  # start of the window decoded each step
        self._read_offset = 0  # ids up to here have been turned into text
        self._known = ""  # the text of ids[prefix_offset:read_offset]

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)

    def _text(self, start: int, end: int) -> str:
        """The text of `ids[start:end]` as it reads inside the whole generated sequence."""
        if start == 0 and not self._keep_leading_space:
            return self._decode(self.ids[:end])
        return self._decode(self._context + self.ids[start:end])[self._context_chars :]

    def push(self, token_id: int) -> str:
        """Add one generated id; return the new text it completes ("" while a character is incomplete)."""
        self.ids.append(int(token_id))
        window = self._text(self._prefix_offset, len(self.ids))
        # A run of byte pieces is decoded as a whole, and one invalid byte turns the whole run into U+FFFD, so a run
        # is sent once a piece that is not a byte ends it (or at the end).
        if len(window) > len(self._known) and not window.endswith(_INCOMPLETE) and token_id not in self._byte_ids:
            delta = window[len(self._known) :]
            # The next window starts where this delta's ids start, so its known text is the delta itself.
            self._prefix_offset, self._read_offset, self._known = self._read_offset, len(self.ids), delta
            return delta
        return ""

    def flush(self) -> str:
        """The text still held back at the end (an unfinished character decodes as U+FFFD, as in a full decode)."""
        window = self._text(self._prefix_offset, len(self.ids))
        delta = window[len(self._known) :]
        self._prefix_offset = self._read_offset = len(self.ids)
        self._known = ""
        return delta

    def text(self) -> str:
        """The whole generated text decoded at once (the reference the deltas add up to)."""
        return self._text(0, len(self.ids))


class StopStrings:
    """Holds back text until it cannot be the start of a stop string; cuts the text before the first match.

    Args:
        stops: The stop strings (empty strings are ignored).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stop for stop in dict.fromkeys(stops) if stop)
        self._pending = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        """Add decoded text; return what can be sent now. After a match, `matched` is set and nothing follows."""
        if self.matched is not None:
            return ""
        self._pending += text
        if not self.stops:
            out, self._pending = self._pending, ""
            return out
        hits = [(self._pending.find(stop), stop) for stop in self.stops]
        found = [(index, -len(stop), stop) for index, stop in hits if index >= 0]
        if found:
            index, _, stop = min(found)
            self.matched = stop
            out, self._pending = self._pending[:index], ""
            return out
        hold = max((self._partial(stop) for stop in self.stops), default=0)
        cut = len(self._pending) - hold
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out

    def _partial(self, stop: str) -> int:
        """The length of the longest end of the pending text that is a proper beginning of `stop`."""
        for size in range(min(len(stop) - 1, len(self._pending)), 0, -1):
            if self._pending.endswith(stop[:size]):
                return size
        return 0

    def flush(self) -> str:
        """The held-back text, at the end of generation (no stop string can complete any more)."""
        out, self._pending = ("" if self.matched is not None else self._pending), ""
        return out


class TextStream:
    """Generated ids in, sendable text out: incremental decoding followed by stop strings.

    `push` returns the text to send for each id; `finish` returns the rest. Their concatenation is the response's
    text whether or not it is streamed. `stop_string` is set once a stop string matched (generation should end).
    """

    def __init__(self, tokenizer: Tokenizer, *, keep_leading_space: bool = True, stop: Sequence[str] = ()) -> None:
        self.decoder = IncrementalDecoder(tokenizer, keep_leading_space=keep_leading_space)
        self._stops = StopStrings(stop)
        self.text = ""

    @property
    def stop_string(self) -> str | None:
        """The stop string that ended the text, if one did."""
        return self._stops.matched

    def push(self, token_id: int) -> str:
        """Add one generated id; return the text that can be sent now."""
        if self._stops.matched is not None:
            return ""
        out = self._stops.feed(self.decoder.push(token_id))
        self.text += out
        return out

    def finish(self) -> str:
        """The text still held back, once generation has ended."""
        out = "" if self._stops.matched is not None else self._stops.feed(self.decoder.flush())
        out += self._stops.flush()
        self.text += out
        return out


__all__ = ["IncrementalDecoder", "StopStrings", "TextStream"]
