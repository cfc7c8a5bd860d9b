"""Errors of the server, each rendered in its protocol's own shape, in one place.

Every endpoint family speaks the error shape its clients parse:

* OpenAI (`/v1/...`): `{"error": {"message", "type", "param", "code"}}`; openai-python maps the status to its
  exception class and fills `.param`/`.code` from the body.
* llama.cpp (`/infill`, `/health`): `{"error": {"code": <status>, "message", "type"}}`.
* TGI (`/`, `/generate`, `/generate_stream`, `/info`): `{"error": str, "error_type": str}`; huggingface_hub types
  its exceptions by `error_type`.
* Ollama (`/api/...`): `{"error": str}` with the HTTP status; the `ollama` package raises `ResponseError` with both.

Handlers raise `ServingError`; the app renders it with the `ErrorShape` of the adapter whose route the request
took (`error_response`), so no handler builds an error body itself. The shared layers name the request fields in
their errors through `Fields`, which each adapter fills with its protocol's own spelling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

_OPENAI_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "rate_limit_error"}
_LLAMACPP_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    501: "not_supported_error",
    503: "unavailable_error",
}
_TGI_TYPES = {401: "authentication", 404: "not_found", 413: "validation", 422: "validation", 429: "overloaded"}


class ServingError(Exception):
    """A request the server refuses: an HTTP status and one line saying what is wrong.

    Args:
        status: The HTTP status (4xx for the client's mistakes, 503 when the server is full).
        message: One line naming the field, the value and what is expected.
        param: The request field at fault (OpenAI's `param`), if one is.
        code: A machine-readable code (OpenAI's `code`, e.g. `context_length_exceeded`).
        extra: More top-level fields for the llama.cpp shape (e.g. `n_ctx`).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.extra = extra or {}


@dataclass(frozen=True)
class Fields:
    """How a protocol spells the request fields that the shared layers name in their errors (`param` and messages).

    The defaults are the generic names (OpenAI's); each adapter passes its own, e.g. llama.cpp's `input_prefix`,
    `input_suffix` and `n_predict`.

    Attributes:
        prompt: The text that is completed, or the prefix of an infilling request.
        suffix: The text after the middle (the prompt field again where the protocol marks it inside the prompt).
        max_tokens: The cap on generated tokens.
        engine: The client's field for each `EngineRequest` field (dotted into `sampling`: `sampling.seed`) that it
            spells otherwise than the engine, for refusals the engine gives (`engine_field`).
    """

    prompt: str = "prompt"
    suffix: str = "suffix"
    max_tokens: str = "max_tokens"
    engine: Mapping[str, str] = field(default_factory=dict)

    def engine_field(self, name: str) -> str:
        """The client's field for the `EngineRequest` field `name` (`prompt_ids`, `max_new_tokens`, `sampling.top_p`)."""
        if name == "prompt_ids":
            return self.prompt
        if name == "max_new_tokens":
            return self.max_tokens
        return self.engine.get(name, name.removeprefix("sampling."))


GENERIC_FIELDS = Fields()


class ErrorShape:
    """How one protocol family renders a `ServingError`: its HTTP status and its JSON body."""

    def status(self, error: ServingError) -> int:
        return error.status

    def body(self, error: ServingError) -> dict[str, Any]:
        raise NotImplementedError


class OpenAIErrors(ErrorShape):
    """`{"error": {"message", "type", "param", "code"}}`."""

    def body(self, error: ServingError) -> dict[str, Any]:
        kind = _OPENAI_TYPES.get(error.status, "server_error" if error.status >= 500 else "invalid_request_error")
        return {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}


class LlamaCppErrors(ErrorShape):
    """`{"error": {"code": <status>, "message", "type", ...extra}}`."""

    def body(self, error: ServingError) -> dict[str, Any]:
        kind = _LLAMACPP_TYPES.get(error.status, "server_error")
        if error.code == "context_length_exceeded":
            kind = "exceed_context_size_error"
        return {"error": {"code": error.status, "message": error.message, "type": kind, **error.extra}}


class TgiErrors(ErrorShape):
    """`{"error": str, "error_type": str}`; every invalid request is a 422 (TGI's `validation` type)."""

    def status(self, error: ServingError) -> int:
        return 422 if error.status == 400 else error.status

    def body(self, error: ServingError) -> dict[str, Any]:
        kind = _TGI_TYPES.get(error.status, "validation" if error.status < 500 else "generation")
        return {"error": error.message, "error_type": kind}


class OllamaErrors(ErrorShape):
    """`{"error": str}` (Ollama's server writes every refusal so; its clients read `error` and the status)."""

    def body(self, error: ServingError) -> dict[str, Any]:
        return {"error": error.message}


OPENAI, LLAMACPP, TGI, OLLAMA = OpenAIErrors(), LlamaCppErrors(), TgiErrors(), OllamaErrors()


def error_response(shape: ErrorShape, error: ServingError) -> JSONResponse:
    """`error` as the HTTP response a client speaking `shape`'s protocol expects."""
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(shape.body(error), status_code=shape.status(error), headers=headers)


def validation_error(errors: Sequence[Any], content_type: str | None = None) -> ServingError:
    """One `ServingError` (400) naming the first field that failed FastAPI/pydantic request validation.

    FastAPI reads a body as JSON only when it is sent as JSON (so a cross-site form post cannot reach an endpoint):
    a body refused for another `content_type` (curl's `-d` sends a form's) gets told what to send.
    """
    first = dict(errors[0]) if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if tuple(first.get("loc", ())) == ("body",) and not _is_json(content_type):
        shown = (content_type or "none").partition(";")[0].strip() or "none"
        return ServingError(
            400, f"send the body with Content-Type: application/json (this request's Content-Type: {shown})"
        )
    # pydantic tags a union member's errors with its type ("str", "list[str]"): not a field of the request.
    location = [str(part) for part in first.get("loc", ()) if part != "body" and not _is_type_tag(part)]
    field = ".".join(location) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return ServingError(400, f"the request body is not valid JSON: {first.get('msg', '')}".rstrip(": "))
    if kind == "extra_forbidden":
        return ServingError(400, f"unsupported request field: {field} (this server does not implement it)", param=field)
    if kind == "missing":
        return ServingError(400, f"missing required field: {field}", param=field)
    if field is None:
        return ServingError(400, f"the request body must be a JSON object: {first.get('msg', '')}", param=None)
    value = first.get("input")
    shown = repr(value) if isinstance(value, (int, float, str, bool)) or value is None else type(value).__name__
    if isinstance(value, str) and len(shown) > 60:
        shown = shown[:57] + "...'"
    return ServingError(400, f"invalid value for {field}: {first.get('msg', 'invalid')} (got {shown})", param=field)


def _is_json(content_type: str | None) -> bool:
    kind = (content_type or "").partition(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _is_type_tag(part: object) -> bool:
    return isinstance(part, str) and (part in {"str", "int", "float", "bool", "none"} or "[" in part)


__all__ = [
    "GENERIC_FIELDS",
    "LLAMACPP",
    "OLLAMA",
    "OPENAI",
    "TGI",
    "ErrorShape",
    "Fields",
    "LlamaCppErrors",
    "OllamaErrors",
    "OpenAIErrors",
    "ServingError",
    "TgiErrors",
    "error_response",
    "validation_error",
]
