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

    Each is built as `tokenizers` builds one: encoded without special tokens, truncated to `max_content` tokens on
    `truncation_side`, given the post-processor's special tokens, then padded to its entry of `padded_lengths` on
    `padding_side`. The post-processor is captured when the call is made, so an `update_post_processor()` in between
    cannot make the encodings disagree with the ids already returned. Pickling stores plain `Encoding` objects.
    """

    __slots__ = ("_backend", "_done", "_padding", "_processor", "_texts", "_truncation")

    def __init__(
        self,
        backend: Tokenizer,
        texts: Sequence[str],
        add_special_tokens: bool,
        *,
        max_content: int | None = None,
        truncation_side: str = "right",
        padded_lengths: Sequence[int] | None = None,
        padding_side: str = "left",
        pad_id: int = 0,
        pad_token: str = "<unk>",
    ) -> None:
        self._backend = backend
        self._texts = list(texts)
        self._processor = backend.post_processor if add_special_tokens else None
        self._truncation = None if max_content is None else (max_content, truncation_side)
        self._padding = None if padded_lengths is None else (list(padded_lengths), padding_side, pad_id, pad_token)
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
                if self._truncation is not None:
                    encoding.truncate(self._truncation[0], direction=self._truncation[1])
                if self._processor is not None:
                    encoding = self._processor.process(encoding)
                if self._padding is not None:
                    lengths, side, pad_id, pad_token = self._padding
                    encoding.pad(lengths[position], direction=side, pad_id=pad_id, pad_token=pad_token)
                self._done[position] = encoding
        return [self._done[position] for position in positions]
