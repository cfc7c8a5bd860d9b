"""From what a client sends to the prompt ids the engine runs: completion, infilling (with its budget) and chat.

Editors send infilling in three shapes, all laid out here as Meta's infilling prompt by the tokenizer itself:

* a prefix and a suffix (`suffix` on `/v1/completions`, `input_prefix`/`input_suffix` on `/infill`);
* a `<FILL_ME>` marker in the text (TGI `inputs`, `/v1/completions` `prompt`), as the pipeline reads it;
* an editor template, `<PRE> {prefix} <SUF>{suffix} <MID>` (Continue, llm-vscode, Tabby, Ollama's template), which
  is parsed back into prefix and suffix instead of being tokenized as text: tokenizing it would give other ids than
  Meta's layout whenever the suffix starts with a character that merges with `>`.

The infilling budget: a prompt and its `max_new_tokens` must fit the model's context. When they do not, the prefix
is cut from its start and the suffix from its end: the suffix keeps up to a quarter of the room for text (more when
the prefix is shorter), the prefix keeps the rest. Cuts are made on the text and re-encoded, so a cut prompt is still
exactly Meta's layout of the text it holds.

Errors name the request's fields as the client's protocol spells them (`Fields`, the generic names by default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...infilling import FILL_TOKEN, layout_length, nolead_ids, split_fill_marker
from ...stopping import CHAT, COMPLETE, INFILL
from ..engines.base import Tokenizer
from ..http.errors import GENERIC_FIELDS, Fields, ServingError

TEMPLATE_PREFIX, TEMPLATE_SUFFIX, TEMPLATE_MIDDLE = "<PRE>", "<SUF>", "<MID>"
CHAT_FIELDS = Fields(prompt="messages", suffix="messages")  # a chat request's prompt is its messages
# The share of the text budget the suffix may always keep (llama.cpp keeps a quarter of its batch for it too).
SUFFIX_SHARE = 4


@dataclass(frozen=True)
class Prompt:
    """A prompt ready for the engine.

    Attributes:
        ids: The complete prompt ids (BOS and the infilling layout included).
        mode: `COMPLETE`, `INFILL` or `CHAT` (from `transformers_codellama.stopping`): what stops it and how its
            output is decoded.
        text: The prompt as the client wrote it (what `echo` returns).
        truncated: True when the infilling budget cut the prefix or the suffix.
        prefix: For infilling, the prefix laid out (after any cut); else "".
        suffix: For infilling, the suffix laid out (after any cut); else "".
    """

    ids: list[int]
    mode: str
    text: str
    truncated: bool = False
    prefix: str = ""
    suffix: str = ""


def parse_editor_template(text: str, *, fields: Fields = GENERIC_FIELDS) -> tuple[str, str] | None:
    """Split an editor's infilling template `<PRE> {prefix} <SUF>{suffix} <MID>` into `(prefix, suffix)`.

    A prompt is a template when it starts with `<PRE>`, ends with `<MID>` and holds exactly one `<SUF>` between them.
    The spaces that stand for the pieces `▁<SUF>`/`▁<MID>` and for the prefix's leading `▁` are dropped: one space
    after `<PRE>`, one before `<SUF>`, one before `<MID>`, each only where present (clients that leave one out still
    get Meta's layout). The suffix follows `<SUF>` directly, as in Meta's layout, so a space there (twinny's
    `<SUF> {suffix}`) is the suffix's own first character. Returns None for anything else.

    Raises:
        ServingError: The prompt starts with `<PRE>` and ends with `<MID>` but holds another number of `<SUF>`.
    """
    if not (text.startswith(TEMPLATE_PREFIX) and text.endswith(TEMPLATE_MIDDLE)):
        return None
    body = text[len(TEMPLATE_PREFIX) : -len(TEMPLATE_MIDDLE)]
    if body.count(TEMPLATE_SUFFIX) != 1:
        raise ServingError(
            400,
            f"the prompt is an infilling template ({TEMPLATE_PREFIX}...{TEMPLATE_MIDDLE}) but holds "
            f"{body.count(TEMPLATE_SUFFIX)} {TEMPLATE_SUFFIX} markers; it takes exactly one",
            param=fields.prompt,
        )
    prefix, suffix = body.split(TEMPLATE_SUFFIX)
    prefix = prefix.removeprefix(" ").removesuffix(" ")
    suffix = suffix.removesuffix(" ")
    return prefix, suffix


def split_infilling(text: str, *, fields: Fields = GENERIC_FIELDS) -> tuple[str, str] | None:
    """`(prefix, suffix)` of a prompt that asks for infilling (an editor template or `<FILL_ME>`), else None.

    Raises:
        ServingError: The prompt holds a malformed template or more than one `<FILL_ME>`.
    """
    template = parse_editor_template(text, fields=fields)
    if template is not None:
        return template
    try:
        return split_fill_marker(text, FILL_TOKEN)
    except ValueError as error:
        raise ServingError(400, str(error), param=fields.prompt) from None


def _plain_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _suffix_ids(tokenizer: Tokenizer, suffix: str) -> list[int]:
    return nolead_ids(tokenizer, [suffix])[0]


def infill_budget(prefix_tokens: int, suffix_tokens: int, room: int) -> tuple[int, int]:
    """How many prefix and suffix tokens to keep when `room` tokens are left for text.

    Nothing is cut when both fit. Otherwise the suffix keeps up to `max(room // 4, room - prefix_tokens)` tokens and
    the prefix the rest of the room.
    """
    if prefix_tokens + suffix_tokens <= room:
        return prefix_tokens, suffix_tokens
    suffix_keep = min(suffix_tokens, max(room // SUFFIX_SHARE, room - prefix_tokens))
    return min(prefix_tokens, room - suffix_keep), suffix_keep


def _longest_fitting(count: Callable[[int], int], length: int, limit: int, *, from_start: bool) -> int:
    """The cut point keeping the most text whose token count is within `limit` (binary search on characters).

    With `from_start`, the kept text is `text[cut:]` (the smallest cut that fits); otherwise `text[:cut]` (the
    largest). `count(cut)` gives the token count of the kept text; the empty text always fits.
    """
    fits, fails = (length, 0) if from_start else (0, length)
    while abs(fits - fails) > 1:
        middle = (fits + fails) // 2
        if count(middle) <= limit:
            fits = middle
        else:
            fails = middle
    return fits


def infilling_prompt(
    tokenizer: Tokenizer,
    prefix: str,
    suffix: str,
    *,
    max_context: int,
    max_new_tokens: int,
    text: str | None = None,
    fields: Fields = GENERIC_FIELDS,
    suffix_first: bool = False,
) -> Prompt:
    """Meta's prefix-suffix-middle prompt for `prefix` and `suffix` (suffix-prefix-middle with `suffix_first`), cut
    to the infilling budget if needed.

    Raises:
        ServingError: the prefix or suffix holds `<FILL_ME>`, or `max_new_tokens` leaves no room for any text in the
            context.
    """
    if FILL_TOKEN in prefix + suffix:
        raise ServingError(
            400,
            f"an infilling prefix or suffix cannot hold {FILL_TOKEN}, which the tokenizer reads as the infilling marker",
            param=fields.prompt,
        )
    room = max_context - max_new_tokens - layout_length(0, 0)
    if room < 0:
        raise ServingError(
            400,
            f"{fields.max_tokens}={max_new_tokens} leaves no room for the infilling prompt in this model's context "
            f"of {max_context} tokens",
            param=fields.max_tokens,
            code="context_length_exceeded",
            extra={"n_ctx": max_context},
        )
    prefix_ids, suffix_ids = _plain_ids(tokenizer, prefix), _suffix_ids(tokenizer, suffix)
    prefix_keep, suffix_keep = infill_budget(len(prefix_ids), len(suffix_ids), room)
    truncated = False
    if prefix_keep < len(prefix_ids):
        cut = _longest_fitting(
            lambda at: len(_plain_ids(tokenizer, prefix[at:])), len(prefix), prefix_keep, from_start=True
        )
        prefix, truncated = prefix[cut:], True
    if suffix_keep < len(suffix_ids):
        cut = _longest_fitting(
            lambda at: len(_suffix_ids(tokenizer, suffix[:at])), len(suffix), suffix_keep, from_start=False
        )
        suffix, truncated = suffix[:cut], True
    ids = list(tokenizer(prefix, suffix=suffix, suffix_first=suffix_first)["input_ids"])
    return Prompt(
        ids=ids,
        mode=INFILL,
        text=prefix + suffix if text is None else text,
        truncated=truncated,
        prefix=prefix,
        suffix=suffix,
    )


def completion_prompt(
    tokenizer: Tokenizer, text: str, *, max_context: int, max_new_tokens: int, fields: Fields = GENERIC_FIELDS
) -> Prompt:
    """`[BOS] + encode(text)`, refused when it and `max_new_tokens` do not fit the context.

    Raises:
        ServingError: prompt + max_new_tokens exceed the model's context.
    """
    ids = _plain_ids(tokenizer, text)
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id, *ids]
    check_fits(len(ids), max_new_tokens, max_context, fields=fields)
    return Prompt(ids=ids, mode=COMPLETE, text=text)


def chat_prompt(
    tokenizer: Tokenizer,
    messages: Sequence[Mapping[str, Any]],
    *,
    max_context: int,
    max_new_tokens: int,
    fields: Fields = CHAT_FIELDS,
) -> Prompt:
    """The chat template's ids for `messages` (Meta's `chat_completion` ids), with the assistant's turn opened.

    Raises:
        ServingError: the model has no chat template (a base model), a message is malformed, or the prompt and
            `max_new_tokens` do not fit the context.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ServingError(
            400,
            "this model has no chat template (a base model, not Code Llama - Instruct); use /v1/completions",
            param=fields.prompt,
            code="chat_not_supported",
        )
    try:
        ids = tokenizer.apply_chat_template(
            [dict(message) for message in messages], add_generation_prompt=True, tokenize=True, return_dict=False
        )
    except (ValueError, TypeError) as error:
        raise ServingError(400, f"invalid {fields.prompt}: {error}", param=fields.prompt) from None
    ids = list(ids)
    check_fits(len(ids), max_new_tokens, max_context, fields=fields)
    return Prompt(ids=ids, mode=CHAT, text="")


def check_fits(prompt_tokens: int, max_new_tokens: int, max_context: int, *, fields: Fields = GENERIC_FIELDS) -> None:
    """Refuse a prompt that, with `max_new_tokens`, does not fit the context (OpenAI's `context_length_exceeded`)."""
    if prompt_tokens + max_new_tokens > max_context:
        raise ServingError(
            400,
            f"This model's maximum context length is {max_context} tokens. However, you requested "
            f"{prompt_tokens + max_new_tokens} tokens ({prompt_tokens} in the prompt, {max_new_tokens} for the "
            f"completion). Please reduce the prompt or {fields.max_tokens}.",
            param=fields.prompt,
            code="context_length_exceeded",
            extra={"n_prompt_tokens": prompt_tokens, "n_ctx": max_context},
        )


def extra_context(chunks: Sequence[Mapping[str, Any]]) -> str:
    """The text that llama.cpp's `input_extra` chunks put in front of the prefix, for Code Llama.

    Code Llama has no file-separator token, and its infilling prompt must start with `BOS ▁<PRE>`, so the chunks go
    at the start of the prefix (not before BOS, as llama.cpp puts them): each as a header line
    `--- {filename} ---` (`filename` defaults to `tmp`) followed by its text, ending with a newline. The prefix cut
    of the infilling budget then drops the oldest chunks first.
    """
    parts = []
    for chunk in chunks:
        text = chunk["text"]
        parts.append(f"--- {chunk.get('filename') or 'tmp'} ---\n{text}" + ("" if text.endswith("\n") else "\n"))
    return "".join(parts)


__all__ = [
    "Prompt",
    "chat_prompt",
    "check_fits",
    "completion_prompt",
    "extra_context",
    "infill_budget",
    "infilling_prompt",
    "parse_editor_template",
    "split_infilling",
]
