"""Errors of the server, each rendered in its protocol's own shape, in one place.

Every endpoint family speaks the error shape its clients parse:

* OpenAI (`/v1/...`): `{"error": {"message", "type", "param", "code"}}`; openai-python maps the status to its
  exception class and fills `.param`/`.code` from the body.
* llama.cpp (`/infill`, `/health`): `{"error": {"code": <status>, "message", "type"}}`.
* TGI (`/`, `/generate`, `/generate_stream`, `/info`): `{"error": str, "error_type": str}`; huggingface_hub types
  its exceptions by `error_type`.

Handlers raise `ServingError`; `error_response` renders it for the request's path, so no handler builds an error
body itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse

OPENAI, LLAMACPP, TGI = "openai", "llamacpp", "tgi"

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


def family_of(path: str) -> str:
    """The protocol family whose error shape a request to `path` gets."""
    if path.startswith("/v1/"):
        return OPENAI
    if path in ("/infill", "/health"):
        return LLAMACPP
    return TGI


def error_body(family: str, error: ServingError) -> dict[str, Any]:
    """The JSON body of `error` in `family`'s shape."""
    if family == OPENAI:
        kind = _OPENAI_TYPES.get(error.status, "server_error" if error.status >= 500 else "invalid_request_error")
        return {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}
    if family == LLAMACPP:
        kind = _LLAMACPP_TYPES.get(error.status, "server_error")
        if error.code == "context_length_exceeded":
            kind = "exceed_context_size_error"
        return {"error": {"code": error.status, "message": error.message, "type": kind, **error.extra}}
    kind = _TGI_TYPES.get(error.status, "validation" if error.status < 500 else "generation")
    return {"error": error.message, "error_type": kind}


def tgi_status(status: int) -> int:
    """TGI answers every invalid request with 422 (its `validation` type); other statuses pass through."""
    return 422 if status == 400 else status


def error_response(path: str, error: ServingError) -> JSONResponse:
    """`error` as the HTTP response a client of `path` expects."""
    family = family_of(path)
    status = tgi_status(error.status) if family == TGI else error.status
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error_body(family, error), status_code=status, headers=headers)


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
    "LLAMACPP",
    "OPENAI",
    "TGI",
    "ServingError",
    "error_body",
    "error_response",
    "family_of",
    "tgi_status",
    "validation_error",
]
