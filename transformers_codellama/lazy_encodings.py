"""Character offsets on demand: the `tokenizers.Encoding` of each text of a plain fast call, computed when first used.

`tokenizers` spends about a fifth of its encode time on real code (and most of it on long single texts) mapping every
byte offset to a character offset, which only `BatchEncoding`'s alignment methods (`char_to_token`, `word_ids`,
`tokens`, ...) read. The fast tokenizer therefore encodes ids with `encode_batch_fast`, which skips that mapping, and
hands `BatchEncoding` a `LazyEncodings`: a sequence that encodes a text with offsets the first time its `Encoding` is
asked for. The ids are the same either way; only when the offsets are computed changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from tokenizers import Encoding, Tokenizer


class LazyEncodings(Sequence[Encoding]):
    """The `tokenizers.Encoding` of each of `texts`, each computed on first access and then kept.

    The post-processor is captured when the call is made, so an `update_post_processor()` in between cannot make the
    encodings disagree with the ids already returned. Pickling stores plain `Encoding` objects.
    """

    __slots__ = ("_add_special_tokens", "_backend", "_done", "_processor", "_texts")

    def __init__(self, backend: Tokenizer, texts: Sequence[str], add_special_tokens: bool) -> None:
        self._backend = backend
        self._texts = list(texts)
        self._processor = backend.post_processor if add_special_tokens else None
        self._add_special_tokens = add_special_tokens
        self._done: dict[int, Encoding] = {}

    def __len__(self) -> int:
        return len(self._texts)

    @overload
    def __getitem__(self, index: int) -> Encoding: ...

    @overload
    def __getitem__(self, index: slice) -> list[Encoding]: ...

    def __getitem__(self, index: int | slice) -> Encoding | list[Encoding]:
        if isinstance(index, slice):
            return self._materialize(range(len(self))[index])
        position = range(len(self))[index]  # IndexError, and negative indices, exactly as a list
        return self._materialize([position])[0]

    def __iter__(self) -> Iterator[Encoding]:
        return iter(self._materialize(range(len(self))))

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))

    def __repr__(self) -> str:
        return f"LazyEncodings({len(self)} texts, {len(self._done)} encoded)"

    def _materialize(self, positions: Sequence[int]) -> list[Encoding]:
        missing = [position for position in positions if position not in self._done]
        if missing:
            # Without the template here, then with the one captured at call time (the shared backend's may have
            # changed since). Concurrent first accesses may both encode; they store equal results.
            encodings = self._backend.encode_batch(
                [self._texts[position] for position in missing], add_special_tokens=False
            )
            for position, encoding in zip(missing, encodings):
                if self._processor is not None:
                    encoding = self._processor.process(encoding)
                self._done[position] = encoding
        return [self._done[position] for position in positions]
