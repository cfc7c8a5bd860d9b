"""Instruct chat for both Code Llama tokenizers: `apply_chat_template` building Meta's `chat_completion` ids."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

# `from .module import name` form only: transformers' remote-code loader copies the files these lines name.
from .chat import KNOWN_TEMPLATES, Control, Segment, segments_for


class CodeLlamaChatMixin:
    """Chat on top of `CodeLlamaTokenizerMixin`'s text encoding: each segment of a turn is encoded on its own."""

    if TYPE_CHECKING:  # provided by the tokenizer classes
        bos_token_id: int
        eos_token_id: int
        chat_template: Any

    def apply_chat_template(self, conversation: Any, *args: Any, **kwargs: Any) -> Any:
        """Format a chat; with this package's templates, the ids are exactly Meta's `chat_completion` ids.

        Meta encodes each turn separately, which no rendered string reproduces, so for the Code Llama templates
        (see `transformers_codellama.chat`) `tokenize=True` builds the ids segment by segment. Custom templates,
        `tokenize=False`, tools, documents and assistant masks go through transformers unchanged.
        """
        template = kwargs.get("chat_template") or self.chat_template  # type: ignore[attr-defined]
        unsupported = ("tools", "documents", "continue_final_message", "return_assistant_tokens_mask")
        if (
            args
            or template not in KNOWN_TEMPLATES
            or not kwargs.get("tokenize", True)
            or any(kwargs.get(key) for key in unsupported)
        ):
            return super().apply_chat_template(conversation, *args, **kwargs)  # type: ignore[misc]
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        conversations = conversation if batched else [conversation]
        sequences = [self._chat_ids(segments_for(template, messages)) for messages in conversations]
        return_dict = kwargs.get("return_dict", _default_return_dict(super().apply_chat_template))  # type: ignore[misc]
        padding = kwargs.get("padding", False)
        encoded = self._assemble(  # type: ignore[attr-defined]  # CodeLlamaTokenizerMixin's
            sequences,
            [[0] * len(sequence) for sequence in sequences],
            batched=batched,
            padding_strategy="longest" if padding is True else (padding or "do_not_pad"),
            max_length=kwargs.get("max_length"),
            return_tensors=kwargs.get("return_tensors"),
            **(kwargs.get("tokenizer_kwargs") or {}),
        )
        return encoded if return_dict else encoded["input_ids"]

    def _chat_ids(self, segments: Sequence[Segment]) -> list[int]:
        texts = iter(self._encode_texts([segment for segment in segments if isinstance(segment, str)]))  # type: ignore[attr-defined]
        controls = {
            Control.BOS: self.bos_token_id,
            Control.EOS: self.eos_token_id,
            Control.STEP: self.step_id,  # type: ignore[attr-defined]
        }
        ids: list[int] = []
        for segment in segments:
            if isinstance(segment, str):
                ids += next(texts)
            elif controls[segment] is None:
                raise ValueError(f"the chat format needs a {segment.value} token, which this tokenizer lacks")
            else:
                ids.append(controls[segment])  # type: ignore[arg-type]
        return ids


def _default_return_dict(method: Any) -> bool:
    parameter = inspect.signature(method).parameters.get("return_dict")
    return bool(parameter.default) if parameter is not None else False
