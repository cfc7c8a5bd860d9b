"""The ASGI app: the protocols' endpoints over an engine, its tokenizer and the model's facts.

`create_app(engine, tokenizer, facts, model_name=...)` is what `codellama-serve` runs and what tests run in-process;
the engine is built by the caller (`loading`), so the app knows no engine class. It only assembles: the request
context (`adapters.context.Server`), the routers of the adapters in `ADAPTERS`, the error handlers, the middleware
(`http/`) and the engine's lifespan (the engine starts and stops with the app). Around the endpoints, plain
ASGI middleware (so streamed responses pass through untouched) checks the API key in constant time, limits the
request body, and logs one line per request with its token counts and time; every refusal is rendered in the error
shape of the adapter whose path the request asked for (`http/errors.py`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from .adapters import llamacpp, mistral, ollama, openai, tgi
from .adapters.base import Adapter
from .adapters.context import Server
from .defaults import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CHOICES, DEFAULT_MAX_TOKENS_CAP
from .engines.base import Engine, ModelFacts, Tokenizer
from .http import metrics, playground
from .http.error_shapes import ErrorShapes
from .http.errors import ErrorShape, ServingError, error_response, validation_error
from .http.guard import GuardMiddleware
from .http.settings import ServerSettings

logger = logging.getLogger("transformers_codellama.serving")

# Every protocol the server speaks; a new protocol is a new adapter module and an entry here.
ADAPTERS: tuple[Adapter, ...] = (
    openai.ADAPTER,
    mistral.ADAPTER,
    llamacpp.ADAPTER,
    tgi.ADAPTER,
    ollama.ADAPTER,
)
# The error shape of a path no adapter claims (TGI's: its compatibility route is `/`).
DEFAULT_ERRORS: ErrorShape = tgi.ADAPTER.errors


def create_app(
    engine: Engine,
    tokenizer: Tokenizer,
    facts: ModelFacts,
    *,
    model_name: str,
    max_tokens_cap: int = DEFAULT_MAX_TOKENS_CAP,
    max_choices: int = DEFAULT_MAX_CHOICES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    cors_origins: Sequence[str] = (),
    api_key: str | None = None,
) -> FastAPI:
    """The server as an ASGI app over an `engine` (not started yet), the `tokenizer` prompts are built with, and the
    `facts` the endpoints report of the model (`loading.load` or `loading.torch_served` build all three).

    The engine starts when the app starts and stops with it. Run it with uvicorn (`codellama-serve` does) or any
    ASGI server.

    Args:
        engine: Any `engines.base.Engine` (the torch batch engine: `engines.torch_batch.TorchEngine`).
        tokenizer: The model's tokenizer (`CodeLlamaTokenizerFast` or `CodeLlamaTokenizer`).
        facts: What the endpoints report or check of the model (dtype, device, whether it can infill).
        model_name: The name clients use for it (`model` in requests, `/v1/models`).
        max_tokens_cap: The most tokens one choice may generate.
        max_choices: The most choices one request may ask for.
        max_body_bytes: The largest request body accepted.
        cors_origins: Origins allowed by CORS (off when empty).
        api_key: Require `Authorization: Bearer <api_key>` on every endpoint but `/health`.
    """
    settings = ServerSettings(
        model_name=model_name,
        api_key=api_key,
        max_tokens_cap=max_tokens_cap,
        max_choices=max_choices,
        max_body_bytes=max_body_bytes,
        cors_origins=list(cors_origins),
    )
    measured = metrics.Metrics()
    metered = metrics.MeteredEngine(engine, measured)
    server = Server(engine=metered, tokenizer=tokenizer, model=facts, settings=settings)
    shapes = ErrorShapes(ADAPTERS, DEFAULT_ERRORS)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metered.start()
        try:
            yield
        finally:
            metered.stop()

    # The schema and its Swagger UI, as vLLM and TGI serve them (guarded by the API key like every endpoint).
    app = FastAPI(title="codellama-serve", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.server = server
    app.state.engine = engine  # the engine as given (the endpoints see it through `MeteredEngine`)

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
    metrics.install(app, measured)  # GET /metrics; counts the requests the guard refuses too
    if settings.cors_origins:
        # Outermost, so preflight requests are answered before the API key is asked for.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


__all__ = ["ADAPTERS", "DEFAULT_ERRORS", "create_app"]
