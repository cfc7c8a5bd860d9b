"""The ASGI app: one engine over an already loaded model and tokenizer, and the three protocols' endpoints.

`create_app(model, tokenizer, model_name=...)` is what `codellama-serve` runs and what tests run in-process. The engine
starts and stops with the app (its lifespan). Around the endpoints, plain ASGI middleware (so streamed responses pass
through untouched) checks the API key in constant time, limits the request body, and logs one line per request with
its token counts and time; every refusal is rendered in the protocol's own error shape (`errors.py`).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .engine import Engine, SamplingParams
from .errors import ServingError, error_response, validation_error
from .generation import Generation, run_all
from .prompts import Prompt

logger = logging.getLogger("transformers_codellama.serving")
access_logger = logging.getLogger("transformers_codellama.serving.access")

DEFAULT_MAX_TOKENS_CAP = 2048
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
PUBLIC_PATHS = frozenset({"/health", "/"})  # `/`: the playground page, which holds no data and asks for the key


@dataclass
class ServerSettings:
    """What the server allows.

    Attributes:
        model_name: The model's name in requests (`model`) and responses; `/v1` requests naming another are 404.
        api_key: When set, every endpoint but `/health` requires `Authorization: Bearer <api_key>`.
        max_tokens_cap: The most tokens one choice may generate; larger `max_tokens`/`n_predict` are lowered to it.
        max_choices: The most choices (`n`, `n_cmpl`, prompts × `n`) one request may ask for.
        max_body_bytes: The largest request body accepted (413 above it).
        cors_origins: Origins allowed by CORS; none (CORS off) by default.
    """

    model_name: str
    api_key: str | None = None
    max_tokens_cap: int = DEFAULT_MAX_TOKENS_CAP
    max_choices: int = 8
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: list[str] = field(default_factory=list)


@dataclass
class Server:
    """What the endpoints share: the engine, the model and tokenizer, the settings. `request.app.state.server`."""

    engine: Any
    model: Any
    tokenizer: Any
    settings: ServerSettings
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def max_context(self) -> int:
        return int(self.engine.max_context)

    def capped(self, max_tokens: int | None, default: int) -> int:
        """`max_tokens` (or `default` when unset or -1) lowered to the server's cap."""
        wanted = default if max_tokens is None or max_tokens < 0 else max_tokens
        return min(wanted, self.settings.max_tokens_cap)

    def check_model(self, name: str | None) -> None:
        """Refuse a request naming a model this server does not serve (OpenAI's 404 `model_not_found`)."""
        if name is not None and name != self.settings.model_name:
            raise ServingError(
                404,
                f"The model `{name}` does not exist; this server serves `{self.settings.model_name}`",
                param="model",
                code="model_not_found",
            )

    def check_choices(self, count: int, param: str) -> None:
        if count > self.settings.max_choices:
            raise ServingError(
                400,
                f"{param} asks for {count} completions; this server allows {self.settings.max_choices}",
                param=param,
            )

    def generation(
        self,
        prompt: Prompt,
        *,
        max_new_tokens: int,
        sampling: SamplingParams,
        stop: Sequence[str] = (),
        time_limit_ms: int | None = None,
    ) -> Callable[[], Generation]:
        """What starts one choice of a request on this server's engine (for `start_all`)."""
        return lambda: Generation(
            self.engine,
            self.tokenizer,
            prompt,
            max_new_tokens=max_new_tokens,
            sampling=sampling,
            stop=stop,
            time_limit_ms=time_limit_ms,
        )


def server_of(request: Request) -> Server:
    """The `Server` behind `request`."""
    return request.app.state.server


def sampling(temperature: float | None, top_p: float | None, top_k: int | None, seed: int | None) -> SamplingParams:
    """Engine sampling settings; temperature 0 (or a nucleus of 0) is greedy."""
    temperature = 1.0 if temperature is None else max(0.0, temperature)
    top_p = 1.0 if top_p is None else top_p
    if top_p <= 0:
        temperature, top_p = 0.0, 1.0
    return SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k or 0, seed=seed)


def note_usage(request: Request, generations: Any) -> None:
    """Record token counts for the access-log line of `request`."""
    usage = request.scope.setdefault("state", {}).setdefault("codellama_usage", [0, 0, 0])
    for generation in generations:
        usage[0] += generation.prompt_tokens
        usage[1] += generation.cached_tokens
        usage[2] += generation.completion_tokens


async def run_to_end(request: Request, generations: Sequence[Generation]) -> None:
    """Run `generations` to the end for a non-streamed response (cancelled if the client leaves), counting usage."""
    await run_all(request.receive, generations)
    note_usage(request, generations)


# ------------------------------------------------------------------------------------------------ middleware
class GuardMiddleware:
    """API key (constant-time), body size limit and the access-log line, as one pure ASGI layer."""

    def __init__(self, app: ASGIApp, *, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        status = [0]

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._log(scope, status[0], time.perf_counter() - started)

        refusal = self._refusal(scope)
        if refusal is not None:
            await error_response(path, refusal)(scope, receive, logged_send)
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
    max_batch_size: int = 8,
    prefix_cache_tokens: int = 16384,
    max_queue: int = 256,
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
        max_batch_size: Requests decoded together by the engine.
        prefix_cache_tokens: The engine's prefix-cache budget, in tokens.
        max_queue: Requests waiting for a slot before the server answers 503.
    """
    from . import llamacpp_api, metrics, openai_api, playground, tgi_api

    settings = ServerSettings(
        model_name=model_name,
        api_key=api_key,
        max_tokens_cap=max_tokens_cap,
        max_choices=max_choices,
        max_body_bytes=max_body_bytes,
        cors_origins=list(cors_origins or []),
    )
    engine = Engine(
        model, tokenizer, max_batch_size=max_batch_size, prefix_cache_tokens=prefix_cache_tokens, max_queue=max_queue
    )
    server = Server(engine=engine, model=model, tokenizer=tokenizer, settings=settings)

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
        return error_response(request.url.path, error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        content_type = request.headers.get("content-type")
        return error_response(request.url.path, validation_error(error.errors(), content_type))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        messages = {
            404: f"no endpoint at {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        message = messages.get(error.status_code, str(error.detail))
        return error_response(request.url.path, ServingError(error.status_code, message))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        logger.exception("error while serving %s", request.url.path)
        return error_response(request.url.path, ServingError(500, f"internal error: {type(error).__name__}"))

    @app.get("/health")
    async def health() -> JSONResponse:
        """Ready (llama.vscode reads `status`)."""
        return JSONResponse({"status": "ok"})

    app.include_router(openai_api.router)
    app.include_router(llamacpp_api.router)
    app.include_router(tgi_api.router)
    app.include_router(playground.router)
    app.add_middleware(GuardMiddleware, settings=settings)
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


__all__ = ["Server", "ServerSettings", "create_app", "note_usage", "sampling", "server_of"]
