"""`GET /metrics`: the server's counters in Prometheus's text format (`prometheus-client`), as vLLM and TGI expose them.

Each app has its own `CollectorRegistry` (several apps may share a process, as the tests do). Requests are counted by
an ASGI layer outside the API-key check (refusals count too), by route and status; unknown paths share the route label
`other`, so a scanner cannot grow the label set. Tokens and latencies are measured on the engine's
streams: the app stands a `MeteredEngine` in front of the engine, so every protocol is measured the same way and no
adapter changes.
A request is *waiting* from submission to its first generated id (queued or prefilling) and *running* from then on
to its end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from ..engines.base import Engine, EngineFeatures, EngineRequest, FinishReason, TokenLogprob, TokenStream
from .http_layer import HTTPLayer
from .response_watch import ResponseWatch

router = APIRouter()

# Latency buckets in seconds: a tiny model on a CPU answers in milliseconds, a 34B on a loaded GPU in seconds.
FIRST_TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PER_TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
OTHER_ROUTE = "other"


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "codellama_http_requests", "HTTP requests answered, by route, method and status",
            ["route", "method", "status"], registry=registry,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "codellama_http_request_duration_seconds", "Time from a request's arrival to the end of its response",
            ["route"], registry=registry,
        )  # fmt: skip
        self.prompt_tokens = Counter("codellama_prompt_tokens", "Prompt tokens submitted", registry=registry)
        self.generation_tokens = Counter("codellama_generation_tokens", "Tokens generated", registry=registry)
        self.waiting = Gauge(
            "codellama_requests_waiting", "Generations submitted that have no token yet (queued or prefilling)",
            registry=registry,
        )  # fmt: skip
        self.running = Gauge("codellama_requests_running", "Generations producing tokens", registry=registry)
        self.first_token_seconds = Histogram(
            "codellama_time_to_first_token_seconds", "Time from submission to the first generated token",
            buckets=FIRST_TOKEN_BUCKETS, registry=registry,
        )  # fmt: skip
        self.per_token_seconds = Histogram(
            "codellama_time_per_output_token_seconds", "Time between consecutive generated tokens",
            buckets=PER_TOKEN_BUCKETS, registry=registry,
        )  # fmt: skip
        self.prefix_hits = Counter(
            "codellama_prefix_cache_hits", "Prompts whose start was reused from the prefix cache", registry=registry
        )
        self.prefix_hit_tokens = Counter(
            "codellama_prefix_cache_hit_tokens", "Prompt tokens whose state came from the prefix cache",
            registry=registry,
        )  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MeteredStream:
    """An engine's stream that reports its tokens and timings to `Metrics`; what it yields and holds is the stream's."""

    def __init__(self, stream: TokenStream, metrics: Metrics) -> None:
        self._stream = stream
        self._metrics = metrics
        self._submitted = time.perf_counter()
        self._last: float | None = None
        self._ended = False
        metrics.prompt_tokens.inc(len(stream.request.prompt_ids))
        metrics.waiting.inc()

    @property
    def request(self) -> EngineRequest:
        return self._stream.request

    @property
    def finish_reason(self) -> FinishReason | None:
        return self._stream.finish_reason

    @property
    def stop_id(self) -> int | None:
        return self._stream.stop_id

    @property
    def cached_tokens(self) -> int:
        return self._stream.cached_tokens

    @property
    def token_logprobs(self) -> list[TokenLogprob]:
        return self._stream.token_logprobs

    @property
    def prompt_logprobs(self) -> list[float | None]:
        return self._stream.prompt_logprobs

    def __aiter__(self) -> AsyncIterator[int]:
        return self._tokens()

    async def _tokens(self) -> AsyncIterator[int]:
        metrics = self._metrics
        try:
            async for token_id in self._stream:
                now = time.perf_counter()
                if self._last is None:
                    metrics.first_token_seconds.observe(now - self._submitted)
                    metrics.waiting.dec()
                    metrics.running.inc()
                    self._note_cache()
                else:
                    metrics.per_token_seconds.observe(now - self._last)
                self._last = now
                metrics.generation_tokens.inc()
                yield token_id
        finally:
            self._end()

    def cancel(self) -> None:
        self._stream.cancel()
        self._end()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._end()

    def _note_cache(self) -> None:
        cached = self._stream.cached_tokens
        if cached:
            self._metrics.prefix_hits.inc()
            self._metrics.prefix_hit_tokens.inc(cached)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._last is None:
            self._metrics.waiting.dec()
            self._note_cache()  # a prefill-only request (llama.cpp's cache warm-up) may have reused a prefix too
        else:
            self._metrics.running.dec()


class MeteredEngine:
    """An engine whose every stream is a `MeteredStream`: the same engine to the adapters, measured for `/metrics`."""

    def __init__(self, engine: Engine, metrics: Metrics) -> None:
        self.engine = engine
        self.metrics = metrics

    @property
    def max_context(self) -> int:
        return self.engine.max_context

    @property
    def vocab_size(self) -> int:
        return self.engine.vocab_size

    @property
    def features(self) -> EngineFeatures:
        return self.engine.features

    def submit(self, request: EngineRequest) -> MeteredStream:
        return MeteredStream(self.engine.submit(request), self.metrics)

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()


class MetricsMiddleware(HTTPLayer):
    """Counts every HTTP request by route template, method and status, and times it to the end of its body."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route_label(scope)

        def count(status: int, seconds: float) -> None:
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(seconds)

        # 500: what the client sees if the app fails before it starts a response.
        watch = ResponseWatch(send, count, status=500)
        try:
            await self.app(scope, receive, watch.send)
        finally:
            watch.end()  # a response cut short (the client left mid-stream) counts with the status it started with


def _route_label(scope: Scope) -> str:
    """The request's path when one of the app's routes serves it (every route here is a fixed path), else `other`."""
    for route in scope["app"].routes:
        if route.matches(scope)[0] != Match.NONE:  # PARTIAL: the path exists, not for this method
            return scope["path"]
    return OTHER_ROUTE


def install(app: FastAPI, metrics: Metrics) -> None:
    """Give `app` its metrics: `GET /metrics` and the request-counting layer (the engine is measured by
    `MeteredEngine`, which the app puts in front of it).

    Call it after the app's other middleware is added, so requests they refuse (a wrong API key) are counted too.
    """
    app.state.metrics = metrics
    app.include_router(router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus's text format (guarded by the API key like every endpoint but `/health`)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


__all__ = ["MeteredEngine", "MeteredStream", "Metrics", "MetricsMiddleware", "install"]
