"""Code Llama - Instruct chat formats, as Meta's `chat_completion` tokenizes them.

A conversation becomes a list of *segments*: control tokens (`BOS`, `EOS`, `STEP`) and texts. Meta encodes every
text segment separately (each gets SentencePiece's implicit leading space), so the exact ids come from encoding the
segments one by one, not from tokenizing one rendered string. The Jinja templates below render the same segments
as a string, for `apply_chat_template(tokenize=False)` and for serving engines that read `chat_template`; a test
keeps the two in step.

* 7B/13B/34B Instruct (Llama 2 chat): per finished exchange `BOS "[INST] {user} [/INST] {answer} " EOS`, then
  `BOS "[INST] {user} [/INST]"`; a system message is merged into the first user message.
* 70B Instruct (`<step>` in the vocabulary): `BOS`, per message `" Source: {role}"`, `"\\n\\n {content}"`, `STEP`;
  then `" Source: assistant\\nDestination: user"`, `"\\n\\n "`. A missing system message is inserted empty.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

STEP_PIECE = "<step>"
B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
# Strings that would turn message text into control structure. Meta refuses the [INST]/<<SYS>> tags; the
# infilling markers and <step> are pieces that SentencePiece would produce from plain text, so they are refused too.
# `<s>` and `</s>` are safe: message text is encoded as text and never yields the BOS/EOS ids.
LLAMA2_FORBIDDEN = (B_INST, E_INST, "<<SYS>>", "<</SYS>>", "<PRE>", "<SUF>", "<MID>", "<EOT>")
STEP_FORBIDDEN = (STEP_PIECE, "<PRE>", "<SUF>", "<MID>", "<EOT>")


class Control(enum.Enum):
    """A control token in a chat layout."""

    BOS = "bos"
    EOS = "eos"
    STEP = "step"


Segment = str | Control


def _messages(conversation: Sequence[Mapping[str, Any]], forbidden: Sequence[str]) -> list[dict[str, str]]:
    messages = []
    for index, message in enumerate(conversation):
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise ValueError(f"chat message {index}: role must be system, user or assistant; got {role!r}")
        if not isinstance(content, str):
            raise TypeError(f"chat message {index}: content must be a string; got {type(content).__name__}")
        for tag in forbidden:
            if tag in content:
                raise ValueError(f"chat message {index} contains the control string {tag!r}, which is not allowed")
        messages.append({"role": role, "content": content})
    if not messages:
        raise ValueError("cannot format an empty conversation")
    return messages


def llama2_segments(conversation: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """Segments of the Llama 2 `[INST]` format (Code Llama 7B/13B/34B Instruct)."""
    messages = _messages(conversation, LLAMA2_FORBIDDEN)
    if messages[0]["role"] == "system":
        if len(messages) < 2:
            raise ValueError("a system message must be followed by a user message")
        merged = B_SYS + messages[0]["content"] + E_SYS + messages[1]["content"]
        messages = [{"role": messages[1]["role"], "content": merged}, *messages[2:]]
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise ValueError(
                f"chat roles must alternate user/assistant after an optional system message; "
                f"turn {index} is {message['role']!r}"
            )
    segments: list[Segment] = []
    for user, answer in zip(messages[::2], messages[1::2]):
        text = f"{B_INST} {user['content'].strip()} {E_INST} {answer['content'].strip()} "
        segments += [Control.BOS, text, Control.EOS]
    if messages[-1]["role"] == "user":
        segments += [Control.BOS, f"{B_INST} {messages[-1]['content'].strip()} {E_INST}"]
    return segments


def step_segments(conversation: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """Segments of the `Source:`/`<step>` format (Code Llama 70B Instruct)."""
    messages = _messages(conversation, STEP_FORBIDDEN)
    if messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": ""})
    segments: list[Segment] = [Control.BOS]
    for message in messages:
        segments += [f" Source: {message['role']}", "\n\n " + message["content"].strip(), Control.STEP]
    segments += [" Source: assistant\nDestination: user", "\n\n "]
    return segments


def chat_ids(
    segments: Sequence[Segment],
    encode: Callable[[list[str]], list[list[int]]],
    controls: Mapping[Control, int | None],
) -> list[int]:
    """The ids of a chat layout: its text segments encoded by one batched `encode` call (each text on its own, as
    Meta encodes each turn), its control segments looked up in `controls`.

    Raises:
        ValueError: the layout needs a control token that `controls` maps to None (the vocabulary lacks it).
    """
    texts = iter(encode([segment for segment in segments if isinstance(segment, str)]))
    ids: list[int] = []
    for segment in segments:
        if isinstance(segment, str):
            ids += next(texts)
            continue
        token = controls[segment]
        if token is None:
            raise ValueError(f"the chat format needs a {segment.value} token, which this tokenizer lacks")
        ids.append(token)
    return ids


def _jinja_list(items: Sequence[str]) -> str:
    """A Jinja list literal of plain strings (no quotes or backslashes in them), quoted as the templates quote."""
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


_RAISE_IF_FORBIDDEN = """
{%- for tag in forbidden %}{%- if tag in message['content'] %}
{{- raise_exception('a chat message contains the control string ' + tag + ', which is not allowed') }}
{%- endif %}{%- endfor %}"""

LLAMA2_CHAT_TEMPLATE = (
    "{%- set forbidden = " + _jinja_list(LLAMA2_FORBIDDEN) + " %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system = none %}{%- set loop_messages = messages %}{%- endif %}"
    "{%- for message in messages %}" + _RAISE_IF_FORBIDDEN + "{%- endfor %}"
    "{%- for message in loop_messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('chat roles must alternate user/assistant after an optional system message') }}"
    "{%- endif %}"
    "{%- if loop.index0 == 0 and system is not none %}"
    "{%- set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{%- else %}{%- set content = message['content'] %}{%- endif %}"
    "{%- if message['role'] == 'user' %}{{- bos_token + '[INST] ' + content | trim + ' [/INST]' }}"
    "{%- else %}{{- ' ' + content | trim + ' ' + eos_token }}{%- endif %}"
    "{%- endfor %}"
)

STEP_CHAT_TEMPLATE = (
    "{%- set forbidden = " + _jinja_list(STEP_FORBIDDEN) + " %}"
    "{%- for message in messages %}" + _RAISE_IF_FORBIDDEN + "{%- endfor %}"
    "{{- bos_token }}"
    "{%- if messages[0]['role'] != 'system' %}{{- ' Source: system\\n\\n <step>' }}{%- endif %}"
    "{%- for message in messages %}"
    "{{- ' Source: ' + message['role'] + '\\n\\n ' + message['content'] | trim + '<step>' }}"
    "{%- endfor %}"
    "{{- ' Source: assistant\\nDestination: user\\n\\n ' }}"
)


def has_step_piece(vocab: Mapping[str, int]) -> bool:
    """Whether a vocabulary is Code Llama 70B's (it has the `<step>` piece)."""
    return STEP_PIECE in vocab


def chat_template_for(tokenizer: Any) -> str:
    """The Jinja chat template matching `tokenizer`'s model: the `<step>` format for 70B, else Llama 2's."""
    return STEP_CHAT_TEMPLATE if has_step_piece(tokenizer.get_vocab()) else LLAMA2_CHAT_TEMPLATE


def segments_for(template: str, conversation: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """The segments of `conversation` in the format of one of this module's templates."""
    return step_segments(conversation) if template == STEP_CHAT_TEMPLATE else llama2_segments(conversation)


KNOWN_TEMPLATES = (LLAMA2_CHAT_TEMPLATE, STEP_CHAT_TEMPLATE)

__all__ = [
    "KNOWN_TEMPLATES",
    "LLAMA2_CHAT_TEMPLATE",
    "STEP_CHAT_TEMPLATE",
    "STEP_PIECE",
    "Control",
    "Segment",
    "chat_ids",
    "chat_template_for",
    "has_step_piece",
    "llama2_segments",
    "segments_for",
    "step_segments",
]
