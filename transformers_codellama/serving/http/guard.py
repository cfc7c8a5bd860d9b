"""The guard in front of every endpoint: the API key (compared in constant time), the request body's size limit, and
the access-log line of each request (its token counts and time), as one pure ASGI layer (streamed responses pass
through untouched). Its refusals are rendered in the error shape of the protocol whose path the request asked for."""

from __future__ import annotations

import hmac
import logging

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .error_shapes import ErrorShapes
from .errors import ServingError, error_response
from .http_layer import HTTPLayer
from .response_watch import ResponseWatch
from .settings import ServerSettings

access_logger = logging.getLogger("transformers_codellama.serving.access")
PUBLIC_PATHS = frozenset({"/health", "/"})  # `/`: the playground page, which holds no data and asks for the key


class GuardMiddleware(HTTPLayer):
    """API key (constant-time), body size limit and the access-log line, as one pure ASGI layer."""

    def __init__(self, app: ASGIApp, *, settings: ServerSettings, shapes: ErrorShapes) -> None:
        super().__init__(app)
        self.settings = settings
        self.shapes = shapes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        logged_send = ResponseWatch(send, lambda status, seconds: self._log(scope, status, seconds)).send
        refusal = self._refusal(scope)
        if refusal is not None:
            await error_response(self.shapes(path), refusal)(scope, receive, logged_send)
            return
        limit = self.settings.max_body_bytes
        received = [0]

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > limit:  # a body sent without Content-Length (chunked)
                    raise StarletteHTTPException(413, _too_large(limit).message)
            return message

        await self.app(scope, limited_receive, logged_send)

    def _refusal(self, scope: Scope) -> ServingError | None:
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        key = self.settings.api_key
        if key is not None and scope.get("path") not in PUBLIC_PATHS and scope.get("method") != "OPTIONS":
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
                return ServingError(
                    401,
                    "Incorrect or missing API key: send the header Authorization: Bearer <key>",
                    code="invalid_api_key",
                )
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_body_bytes:
            return _too_large(self.settings.max_body_bytes)
        return None

    def _log(self, scope: Scope, status: int, seconds: float) -> None:
        prompt, cached, completion = scope.get("state", {}).get("codellama_usage", (0, 0, 0))
        client = scope.get("client") or ("-", 0)
        access_logger.info(
            '%s "%s %s" %d prompt_tokens=%d cached_tokens=%d completion_tokens=%d time=%.3fs',
            client[0],
            scope.get("method"),
            scope.get("path"),
            status,
            prompt,
            cached,
            completion,
            seconds,
        )


def _too_large(limit: int) -> ServingError:
    return ServingError(413, f"the request body exceeds this server's limit of {limit} bytes")


__all__ = ["PUBLIC_PATHS", "GuardMiddleware"]
