"""`codellama-serve` as a Ray Serve application: the same `create_app` in every replica, one engine per replica.

    from ray import serve
    from transformers_codellama.serving.ray_serve.deployment import RayOptions, build_app

    serve.run(build_app(RayOptions(model="path/to/CodeLlama-7b-hf", replicas=2)), route_prefix="/")

`serve run transformers_codellama.serving.ray_serve.deployment:app_builder model=... replicas=2` builds the same
application from `serve run` arguments or a config file (`docs/serving_ray.md`).

Two deployments make the application:

* `CodeLlamaReplica` (`@serve.ingress`): loads the model in the replica and serves the FastAPI app of `create_app`,
  so every route, protocol, error shape and the API key are those of the single-process server.
* `CodeLlamaFront` (the HTTP ingress with prefix routing): Ray's HTTP proxy hands a replica the request's scope but
  not its body (the replica pulls the body from the proxy once routed), so a request router placed in front of
  `CodeLlamaReplica` directly could not see the prompt. The front reads the body, takes the prompt's leading text
  as the routing key and passes the request to a replica over a deployment handle whose router is
  `ray_serve.router.PrefixAffinityRouter`. If the replica dies before it answered, the front tries another one; if it dies
  mid-stream, the front ends the stream with the protocol's error event (`http.framing.Framing.error_tail`), SSE or
  NDJSON, as `adapters.base.streamed` does.

With `router="power-of-two"` the replica deployment is the ingress itself (Ray's default routing, no front).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast

from ray import serve
from ray.exceptions import RayError
from ray.serve._private.http_util import ASGIAppReplicaWrapper
from ray.serve.config import AutoscalingConfig, RequestRouterConfig
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..defaults import DEFAULT_MAX_BODY_BYTES
from ..http.errors import ServingError, error_response
from ..http.framing import framing_of

logger = logging.getLogger("transformers_codellama.serving.ray")

Router = Literal["prefix", "power-of-two"]
ROUTERS: tuple[Router, ...] = ("prefix", "power-of-two")
REPLICA_HEADER = b"x-codellama-replica"  # which replica answered (set by the front), for logs and tests
KEY_CHARS = 2048  # leading prompt characters the router compares; a prompt's cache reuse is decided well inside them
# The prompt's text in each protocol's request body, in the order the prompt lays them out.
PROMPT_FIELDS = ("input_extra", "input_prefix", "prompt", "content", "inputs", "messages")
# What of a scope travels to the replica (the proxy's scope holds more, some of it not picklable).
SCOPE_KEYS = ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "root_path", "query_string")


@dataclass
class RayOptions:
    """What the Ray Serve application serves and how it scales; the fields mirror `codellama-serve`'s flags.

    Attributes:
        model: A converted checkpoint folder or Hub id, readable on every node; None: the package's small model.
        model_name: The name clients use (default: `model`, or `codellama-tiny`).
        dtype: Weights dtype (`auto`, `float32`, `bfloat16`, `float16`).
        device: Torch device in the replica (default: cuda when the replica has a GPU, else cpu).
        app: Keyword arguments of `create_app` (api_key, max_tokens_cap, ...) and of the engine (`loading.EngineOptions`:
            max_batch_size, prefix_cache_tokens, ...).
        replicas: Fixed replica count (ignored when `min_replicas`/`max_replicas` ask for autoscaling).
        min_replicas, max_replicas: The autoscaling range; `target_ongoing_requests` per replica drives it.
        replica_cpus, replica_gpus: Each replica's `ray_actor_options`.
        router: `prefix` (a front deployment routes by prompt prefix) or `power-of-two` (Ray's default).
        imbalance: Queued requests more on the prefix's replica than on the least loaded one before the router
            gives up the cached prefix for the less loaded replica.
        max_ongoing_requests: Requests one replica takes at once (the engine batches them; more wait in Ray).
    """

    model: str | None = None
    model_name: str | None = None
    dtype: str = "auto"
    device: str | None = None
    app: dict[str, Any] = field(default_factory=dict)
    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_ongoing_requests: float = 4.0
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    router: Router = "prefix"
    imbalance: int = 4
    max_ongoing_requests: int = 32

    def __post_init__(self) -> None:
        if self.router not in ROUTERS:
            raise ValueError(f"router must be one of {', '.join(ROUTERS)}; got {self.router!r}")
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1; got {self.replicas}")

    @property
    def served_name(self) -> str:
        from ..default_model import DEFAULT_MODEL_NAME

        return self.model_name or self.model or DEFAULT_MODEL_NAME

    @property
    def autoscaling(self) -> AutoscalingConfig | None:
        if self.min_replicas is None and self.max_replicas is None:
            return None
        low = self.min_replicas if self.min_replicas is not None else 1
        high = self.max_replicas if self.max_replicas is not None else max(low, self.replicas)
        if not 0 <= low <= high or high < 1:
            raise ValueError(f"the autoscaling range must satisfy 0 <= min <= max, max >= 1; got {low}..{high}")
        return AutoscalingConfig(
            min_replicas=low,
            max_replicas=high,
            initial_replicas=min(max(low, self.replicas), high),
            target_ongoing_requests=self.target_ongoing_requests,
        )


# ------------------------------------------------------------------------------------------------ the replica
class ReplicaServer:
    """One engine and the FastAPI app of `create_app` over it, in one Ray Serve replica.

    Behind the front it serves `forward` calls; as the ingress (`CodeLlamaIngressReplica`) it is the app Ray's HTTP
    proxy calls. Either way the app and its lifespan (the engine's start and stop) are those of `codellama-serve`.
    """

    # Ray awaits an async constructor (the app's lifespan starts the engine here).
    async def __init__(self, options: RayOptions) -> None:  # type: ignore[misc]
        from ..app import create_app
        from ..loading import engine_options, load

        self.ray_options = options
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        engine, app_options = engine_options(options.app)
        served = load(options.model, dtype=options.dtype, device=options.device, options=engine)
        self.asgi = create_app(*served, model_name=options.served_name, **app_options)
        self.lifespan: contextlib.AsyncExitStack | None = None
        if not isinstance(self, ASGIAppReplicaWrapper):  # the ingress wrapper runs the lifespan itself
            self.lifespan = contextlib.AsyncExitStack()
            await self.lifespan.enter_async_context(self.asgi.router.lifespan_context(self.asgi))

    async def __del__(self) -> None:
        if self.lifespan is not None:
            await self.lifespan.aclose()

    async def forward(self, routing_key: str, scope: Scope, body: bytes) -> AsyncIterator[Message]:
        """Run one HTTP request (its scope and whole body) through the app, yielding its ASGI messages.

        `routing_key` is only for the router (it reads the first argument). Closing the generator (the client or
        the front went away) tells the app the client disconnected, which cancels the generation.
        """
        del routing_key
        messages: asyncio.Queue[Message | None] = asyncio.Queue()
        gone = asyncio.Event()
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Message:
            if pending:
                return pending.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (REPLICA_HEADER, self.replica_id.encode())],
                }
            await messages.put(message)

        async def run() -> None:
            try:
                await self.asgi({**scope, "state": {}}, receive, send)
            finally:
                await messages.put(None)

        task = asyncio.create_task(run())
        try:
            while (message := await messages.get()) is not None:
                yield message
            await task
        finally:
            gone.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)


# ------------------------------------------------------------------------------------------------ the front
def routing_key(body: bytes) -> str:
    """The leading text of the prompt in a request `body` (any protocol's JSON), or of the body itself."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        request = None
    if not isinstance(request, dict):
        return body[:KEY_CHARS].decode("utf-8", "replace")
    parts: list[str] = []
    for name in PROMPT_FIELDS:
        value = request.get(name)
        if value is not None:
            parts.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
    return "".join(parts)[:KEY_CHARS] if parts else body[:KEY_CHARS].decode("utf-8", "replace")


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class FrontApp:
    """The front's ASGI app: read the body, route by its prompt, relay the replica's messages, end failures in the
    protocol's shape."""

    def __init__(self, replicas: DeploymentHandle, *, max_body_bytes: int, attempts: int = 3) -> None:
        from ..app import ADAPTERS, DEFAULT_ERRORS
        from ..http.error_shapes import ErrorShapes

        self.replicas: Any = replicas.options(stream=True)  # a streaming handle: `.remote` gives a generator
        self.shapes = ErrorShapes(ADAPTERS, DEFAULT_ERRORS)
        self.max_body_bytes = max_body_bytes
        self.attempts = attempts

    async def relay(self, scope: Scope, body: bytes, send: Send) -> None:
        """Send the request of `scope` and `body` to a replica and its response to `send`."""
        small = {key: scope[key] for key in SCOPE_KEYS if key in scope}
        small |= {
            "headers": list(scope.get("headers", [])),
            "client": scope.get("client"),
            "server": scope.get("server"),
        }
        key = routing_key(body)
        started = False
        framing = None
        for attempt in range(self.attempts):
            try:
                async for message in self.replicas.forward.remote(key, small, body):
                    if message["type"] == "http.response.start":
                        started = True
                        types = [value for name, value in message.get("headers", []) if name.lower() == b"content-type"]
                        framing = framing_of(types[0].decode("latin-1")) if types else None
                    await send(message)
                return
            except RayError as error:  # the replica died (SIGKILL, node lost) or failed outside the app
                logger.warning("replica failed on %s (attempt %d): %s", scope.get("path"), attempt + 1, error)
                if started:
                    failure = ServingError(503, "the replica serving this request stopped; retry the request")
                    shape = self.shapes(scope.get("path", ""))
                    tail = framing.error_tail(shape, failure).encode() if framing is not None else b""
                    await send({"type": "http.response.body", "body": tail, "more_body": False})
                    return
        failure = ServingError(503, "no replica could answer this request; retry it")
        await error_response(self.shapes(scope.get("path", "")), failure)(scope, _no_receive, send)


@serve.deployment(name="CodeLlamaReplica")
class CodeLlamaReplica(ReplicaServer):
    """A replica behind the prefix-routing front."""


@serve.deployment(name="CodeLlamaReplica")
@serve.ingress()
class CodeLlamaIngressReplica(ReplicaServer):
    """A replica as the HTTP ingress (`serve.ingress`), routed by Ray's default router."""

    def __serve_build_asgi_app__(self) -> Any:
        return self.asgi


class _Relay(Response):
    """A response that is the front's relay of one request (its body already read) to a replica."""

    def __init__(self, front: FrontApp, body: bytes) -> None:
        self.front = front
        self.request_body = body
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front.relay(scope, self.request_body, send)


@serve.deployment(name="CodeLlamaFront", ray_actor_options={"num_cpus": 0.1})
class CodeLlamaFront:
    """The HTTP ingress with prefix routing: a few lines of I/O per request, no model."""

    def __init__(self, replicas: DeploymentHandle, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.front = FrontApp(replicas, max_body_bytes=max_body_bytes)

    async def __call__(self, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            # Past the limit the replica's guard answers 413 in the protocol's shape: one byte over is enough.
            if len(body) > self.front.max_body_bytes:
                del body[self.front.max_body_bytes + 1 :]
                break
        return _Relay(self.front, bytes(body))


# ------------------------------------------------------------------------------------------------ builders
def build_app(options: RayOptions) -> Any:
    """The Ray Serve application of `options` (for `serve.run`): replicas behind the prefix-routing front, or, with
    `router="power-of-two"`, the replicas as the ingress."""
    from .router import PrefixAffinityRouter

    actor_options: dict[str, Any] = {"num_cpus": options.replica_cpus}
    if options.replica_gpus:
        actor_options["num_gpus"] = options.replica_gpus
    deployment_options: dict[str, Any] = {
        "ray_actor_options": actor_options,
        "max_ongoing_requests": options.max_ongoing_requests,
        "health_check_period_s": 2,
        "health_check_timeout_s": 10,
    }
    autoscaling = options.autoscaling
    if autoscaling is None:
        deployment_options["num_replicas"] = options.replicas
    else:
        deployment_options["autoscaling_config"] = autoscaling
    if options.router == "prefix":
        deployment_options["request_router_config"] = RequestRouterConfig(
            request_router_class=cast(Any, PrefixAffinityRouter), request_router_kwargs={"imbalance": options.imbalance}
        )
    if options.router == "power-of-two":
        return cast(Any, CodeLlamaIngressReplica).options(**deployment_options).bind(options)
    replicas = cast(Any, CodeLlamaReplica).options(**deployment_options).bind(options)
    max_body_bytes = options.app.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)
    # The front only relays: it must take every request the replicas can (Ray's default of 5 ongoing requests per
    # replica would queue the rest in the proxy, ahead of the engines' batches).
    front_capacity = options.max_ongoing_requests * (options.max_replicas or options.replicas)
    front = cast(Any, CodeLlamaFront).options(max_ongoing_requests=max(front_capacity, options.max_ongoing_requests))
    return front.bind(replicas, max_body_bytes)


def app_builder(args: dict[str, Any]) -> Any:
    """`serve run`'s builder: `args` are `RayOptions` fields (strings from the command line are converted), and
    `create_app` keywords (api_key, max_tokens_cap, ...) at the top level or under `app`."""
    known = {item.name: item for item in fields(RayOptions)}
    values: dict[str, Any] = {}
    app: dict[str, Any] = dict(args.get("app", {}))
    for name, value in args.items():
        if name == "app":
            continue
        target = values if name in known else app
        target[name] = _convert(name, value)
    return build_app(RayOptions(**values, app=app))


_INTS = {"replicas", "min_replicas", "max_replicas", "imbalance", "max_ongoing_requests", "max_tokens_cap"}
_INTS |= {"max_choices", "max_body_bytes", "max_batch_size", "prefix_cache_tokens", "max_queue"}
_FLOATS = {"target_ongoing_requests", "replica_cpus", "replica_gpus"}


def _convert(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in _INTS:
        return int(value)
    if name in _FLOATS:
        return float(value)
    return value


__all__ = [
    "REPLICA_HEADER",
    "CodeLlamaFront",
    "CodeLlamaIngressReplica",
    "CodeLlamaReplica",
    "RayOptions",
    "app_builder",
    "build_app",
    "routing_key",
]
