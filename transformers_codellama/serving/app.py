"""The ASGI app: one engine over an already loaded model and tokenizer, and the protocols' endpoints.

`create_app(model, tokenizer, model_name=...)` is what `codellama-serve` runs and what tests run in-process. It only
assembles: the request context (`context.Server`), the routers of the adapters in `ADAPTERS`, the error handlers,
the middleware and the engine's lifespan (the engine starts and stops with the app). Around the endpoints, plain
ASGI middleware (so streamed responses pass through untouched) checks the API key in constant time, limits the
request body, and logs one line per request with its token counts and time; every refusal is rendered in the error
shape of the adapter whose path the request asked for (`errors.py`).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import llamacpp_api, metrics, mistral_api, ollama_api, openai_api, playground, tgi_api
from .adapter import Adapter
from .context import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TOKENS_CAP, ModelFacts, Server, ServerSettings
from .engine import Engine
from .errors import ErrorShape, ServingError, error_response, validation_error
from .http_layer import HTTPLayer
from .response_watch import ResponseWatch
from .speculation import PromptLookup

logger = logging.getLogger("transformers_codellama.serving")
access_logger = logging.getLogger("transformers_codellama.serving.access")

PUBLIC_PATHS = frozenset({"/health", "/"})  # `/`: the playground page, which holds no data and asks for the key
# Every protocol the server speaks; a new protocol is a new adapter module and an entry here.
ADAPTERS: tuple[Adapter, ...] = (
    openai_api.ADAPTER,
    mistral_api.ADAPTER,
    llamacpp_api.ADAPTER,
    tgi_api.ADAPTER,
    ollama_api.ADAPTER,
)
# The error shape of a path no adapter claims (TGI's: its compatibility route is `/`).
DEFAULT_ERRORS: ErrorShape = tgi_api.ADAPTER.errors


class ErrorShapes:
    """The error shape of each request path: the shape of the adapter that serves it or whose prefix holds it."""

    def __init__(self, adapters: Sequence[Adapter], default: ErrorShape) -> None:
        self._exact = {path: adapter.errors for adapter in adapters for path in adapter.paths}
        self._prefixes = [(prefix, adapter.errors) for adapter in adapters for prefix in adapter.paths_under]
        self._default = default

    def __call__(self, path: str) -> ErrorShape:
        if path in self._exact:
            return self._exact[path]
        return next((shape for prefix, shape in self._prefixes if path.startswith(prefix)), self._default)


# ------------------------------------------------------------------------------------------------ middleware
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


# ------------------------------------------------------------------------------------------------ app
def create_app(
    model: Any,
    tokenizer: Any,
    *,
    model_name: str,
    api_key: str | None = None,
    max_tokens_cap: int = DEFAULT_MAX_TOKENS_CAP,
    max_choices: int = 8,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    cors_origins: list[str] | None = None,
    max_batch_size: int = 0,
    prefix_cache_tokens: int = 16384,
    max_queue: int = 256,
    speculation: PromptLookup | None = None,
) -> FastAPI:
    """The server as an ASGI app over an already loaded Code Llama `model` and its `tokenizer`.

    The engine (one scheduler thread owning the model) starts when the app starts and stops with it. Run it with
    uvicorn (`codellama-serve` does) or any ASGI server.

    Args:
        model: A loaded `CodeLlamaForCausalLM` (eval mode).
        tokenizer: Its tokenizer (`CodeLlamaTokenizerFast` or `CodeLlamaTokenizer`).
        model_name: The name clients use for it (`model` in requests, `/v1/models`).
        api_key: Require `Authorization: Bearer <api_key>` on every endpoint but `/health`.
        max_tokens_cap: The most tokens one choice may generate.
        max_choices: The most choices one request may ask for.
        max_body_bytes: The largest request body accepted.
        cors_origins: Origins allowed by CORS (off when empty).
        max_batch_size: Requests decoded together by the engine at most (0: as many as its cache memory holds).
        prefix_cache_tokens: The engine's prefix-cache budget, in tokens.
        max_queue: Requests waiting for a slot before the server answers 503.
        speculation: The engine's prompt-lookup speculation (`speculation.PromptLookup`); None decodes one token a step.
    """
    settings = ServerSettings(
        model_name=model_name,
        api_key=api_key,
        max_tokens_cap=max_tokens_cap,
        max_choices=max_choices,
        max_body_bytes=max_body_bytes,
        cors_origins=list(cors_origins or []),
    )
    engine = Engine(
        model,
        tokenizer,
        max_batch_size=max_batch_size,
        prefix_cache_tokens=prefix_cache_tokens,
        max_queue=max_queue,
        speculation=speculation,
    )
    server = Server(engine=engine, tokenizer=tokenizer, model=ModelFacts.of(model, tokenizer), settings=settings)
    shapes = ErrorShapes(ADAPTERS, DEFAULT_ERRORS)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    # The schema and its Swagger UI, as vLLM and TGI serve them (guarded by the API key like every endpoint).
    app = FastAPI(title="codellama-serve", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.server = server

    @app.exception_handler(ServingError)
    async def _serving_error(request: Request, error: ServingError) -> Response:
        return error_response(shapes(request.url.path), error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        content_type = request.headers.get("content-type")
        return error_response(shapes(request.url.path), validation_error(error.errors(), content_type))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        messages = {
            404: f"no endpoint at {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        message = messages.get(error.status_code, str(error.detail))
        return error_response(shapes(request.url.path), ServingError(error.status_code, message))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        logger.exception("error while serving %s", request.url.path)
        return error_response(shapes(request.url.path), ServingError(500, f"internal error: {type(error).__name__}"))

    for adapter in ADAPTERS:
        app.include_router(adapter.router)
    app.include_router(playground.router)
    app.add_middleware(GuardMiddleware, settings=settings, shapes=shapes)
    metrics.install(app, engine)  # GET /metrics; counts the requests the guard refuses too
    if settings.cors_origins:
        # Outermost, so preflight requests are answered before the API key is asked for.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


__all__ = ["ADAPTERS", "ErrorShapes", "GuardMiddleware", "create_app"]
