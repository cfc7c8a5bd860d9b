"""`codellama-serve MODEL --ray`: start (or join) a Ray cluster, deploy the server on Ray Serve, stop it on Ctrl-C.

Run by `cli.main` when `--ray` is given; the replicas load the model themselves, so this process never does. On
Ctrl-C or SIGTERM it deletes the Serve application and, when it started the cluster, shuts Serve and the cluster
down, leaving no Ray process behind; a joined cluster (`--ray-address`) keeps running.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time
from typing import Any

import ray
from ray import serve

from .deployment import RayOptions, build_app

APP_NAME = "codellama"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def options_of(args: argparse.Namespace, *, api_key: str | None) -> RayOptions:
    """The `RayOptions` of `codellama-serve`'s parsed flags."""
    return RayOptions(
        model=args.model,
        model_name=args.model_name,
        dtype=args.dtype,
        device=args.device,
        app={
            "api_key": api_key,
            "max_tokens_cap": args.max_tokens_cap,
            "max_body_bytes": args.max_body_bytes,
            "cors_origins": args.cors_origin,
            "max_batch_size": args.max_batch_size,
            "prefix_cache_tokens": args.prefix_cache_tokens,
        },
        replicas=args.replicas,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        target_ongoing_requests=args.target_ongoing_requests,
        replica_cpus=args.replica_cpus,
        replica_gpus=args.replica_gpus,
        router=args.router,
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve_on_ray(args: argparse.Namespace, *, api_key: str | None) -> int:
    """Deploy the server of `args` on Ray Serve at `args.host:args.port` and serve until interrupted."""
    try:
        options = options_of(args, api_key=api_key)
        options.autoscaling  # noqa: B018  (validates the range before a cluster starts)
    except ValueError as error:
        print(f"codellama-serve: error: {error}", file=sys.stderr)
        return 2
    port = args.port or _free_port(args.host)
    started = args.ray_address is None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if started:
            node_ip: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if args.host in LOOPBACK else {}
            ray.init(include_dashboard=False, **node_ip)
        else:
            ray.init(address=args.ray_address)
        serve.start(http_options={"host": args.host, "port": port})
        serve.run(build_app(options), name=APP_NAME, route_prefix="/", blocking=False)
        _wait_ready()
        print(
            f"codellama-serve: {options.served_name} on Ray Serve ({_replicas(options)}, router {options.router}) "
            f"at http://{args.host}:{port}",
            file=sys.stderr,
            flush=True,
        )
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("codellama-serve: stopping", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, _ignore)  # a second signal must not cut the clean-up short
        signal.signal(signal.SIGINT, _ignore)
        _stop(started)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return 0


def _ignore(signum: int, frame: Any) -> None:
    pass


def _stop(started: bool) -> None:
    if not ray.is_initialized():
        return
    try:
        if started:
            serve.shutdown()
        else:
            serve.delete(APP_NAME)
    finally:
        ray.shutdown()


def _wait_ready(timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while serve.status().applications[APP_NAME].status != "RUNNING":
        if serve.status().applications[APP_NAME].status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise RuntimeError(serve.status().applications[APP_NAME].message)
        if time.monotonic() > deadline:
            raise TimeoutError("the Serve application did not start")
        time.sleep(0.5)


def _replicas(options: RayOptions) -> str:
    scaling = options.autoscaling
    if scaling is None:
        return f"{options.replicas} replica{'s' if options.replicas != 1 else ''}"
    return f"{scaling.min_replicas} to {scaling.max_replicas} replicas"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


__all__ = ["APP_NAME", "options_of", "serve_on_ray"]
