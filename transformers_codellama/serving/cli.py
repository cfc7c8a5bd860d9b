"""`codellama-serve [MODEL]`: serve a converted Code Llama folder or Hub id to editors (OpenAI, llama.cpp, TGI APIs).

    codellama-serve                       # the package's small trained model, on http://127.0.0.1:8080
    codellama-serve path/to/CodeLlama-7b-hf --port 8080
    codellama-serve codellama/CodeLlama-7b-Instruct-hf --dtype bfloat16 --api-key "$KEY"

It binds to 127.0.0.1 unless `--host` says otherwise, prints one start-up line (URL, model, dtype, device) and one
access-log line per request (token counts and time). The API key may also come from `CODELLAMA_SERVE_API_KEY`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

# `pip install .` leaves the server's dependencies out: say which extra to install, not a traceback.
SERVE_MODULES = frozenset({"fastapi", "starlette", "pydantic", "uvicorn", "prometheus_client"})
try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn

    from .default_model import DEFAULT_MODEL_NAME, DEFAULT_MODEL_NOTE
    from .defaults import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_TOKENS_CAP, DEFAULT_PREFIX_CACHE_TOKENS
    from .engines.speculation import DEFAULT_LOOKUP, PromptLookup
except ImportError as missing:
    if (missing.name or "").partition(".")[0] not in SERVE_MODULES:
        raise
    sys.exit(
        f"codellama-serve: error: {missing.name} is not installed: the server needs the serve extra, "
        'pip install ".[serve]" (from a clone of this repository)'
    )

API_KEY_ENV = "CODELLAMA_SERVE_API_KEY"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codellama-serve",
        allow_abbrev=False,  # `--model PATH` must not be read as `--model-name PATH`
        description="Serve Code Llama to editors with Meta's exact fill-in-the-middle: OpenAI /v1/completions (with "
        "suffix) and /v1/chat/completions, Mistral /v1/fim/completions, llama.cpp /infill and /completion, TGI "
        "/generate and /generate_stream, Ollama /api/generate and /api/chat.",
    )
    parser.add_argument(
        "model",
        nargs="?",
        help=f"a converted checkpoint folder or a Hub model id (default: the package's small trained model, "
        f"served as {DEFAULT_MODEL_NAME})",
    )
    parser.add_argument("-m", "--model", dest="model_option", metavar="MODEL", help="the same as the MODEL argument")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080; 0 picks a free one)")
    parser.add_argument(
        "--model-name",
        "--served-model-name",
        "--alias",
        dest="model_name",
        help="the name clients use for the model (default: the MODEL argument)",
    )
    parser.add_argument(
        "--api-key", help=f"require 'Authorization: Bearer <key>' on every endpoint but /health (or set {API_KEY_ENV})"
    )
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="weights dtype (default: the checkpoint's)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument(
        "--max-tokens-cap",
        type=int,
        default=DEFAULT_MAX_TOKENS_CAP,
        help="the most tokens one completion may generate; larger max_tokens/n_predict/max_new_tokens are lowered to it "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-batch-size",
        "--parallel",
        "-np",
        "--max-num-seqs",
        dest="max_batch_size",
        type=int,
        default=0,
        help="requests decoded together at most (default: 0, as many as the cache memory holds, up to 256)",
    )
    parser.add_argument(
        "--threads",
        "-t",
        type=int,
        default=0,
        help="torch threads (default: 0, the cores this process may use less those busy with other work)",
    )
    parser.add_argument(
        "--draft-tokens",
        type=int,
        default=DEFAULT_LOOKUP.draft_tokens,
        help="prompt-lookup speculation: tokens drafted per request and step (default: %(default)s; 0 turns it off)",
    )
    parser.add_argument(
        "--draft-ngram",
        type=int,
        default=DEFAULT_LOOKUP.ngram,
        help="prompt-lookup speculation: trailing tokens matched against the request's own text (default: %(default)s)",
    )
    parser.add_argument(
        "--prefix-cache-tokens",
        type=int,
        default=DEFAULT_PREFIX_CACHE_TOKENS,
        help="prompt-state cache budget, in tokens (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="the largest request body, in bytes (default: %(default)s)",
    )
    parser.add_argument(
        "--cors-origin",
        "--allowed-origins",
        dest="cors_origin",
        action="append",
        default=[],
        help="allow this origin through CORS (repeatable, or a JSON list as vLLM takes it; default: off)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="the server's log level (default: %(default)s)",
    )
    ray = parser.add_argument_group('Ray Serve (pip install ".[ray]"; docs/serving_ray.md)')
    ray.add_argument("--ray", action="store_true", help="serve on Ray Serve: one engine per replica, same routes")
    ray.add_argument("--ray-address", help="join this cluster (auto, ray://host:10001) instead of starting one")
    ray.add_argument("--replicas", type=int, default=1, help="replicas, each with its own engine (default: 1)")
    ray.add_argument("--replica-cpus", type=float, default=1.0, help="CPUs each replica reserves (default: 1)")
    ray.add_argument("--replica-gpus", type=float, default=0.0, help="GPUs each replica reserves (default: 0)")
    ray.add_argument("--min-replicas", type=int, help="autoscale from this many replicas")
    ray.add_argument("--max-replicas", type=int, help="autoscale up to this many replicas")
    ray.add_argument(
        "--target-ongoing-requests", type=float, default=4.0, help="requests per replica autoscaling aims at"
    )
    ray.add_argument(
        "--router",
        choices=("prefix", "power-of-two"),
        default="prefix",
        help="prefix: keep an editor's prompt on the replica caching it (default); power-of-two: Ray's default",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model and tokenizer, build the app and run it with uvicorn until interrupted."""
    args = build_parser().parse_args(argv)
    if args.model_option is not None:
        if args.model is not None and args.model != args.model_option:
            print(
                f"codellama-serve: error: two models given: {args.model} and --model {args.model_option}; give one",
                file=sys.stderr,
            )
            return 2
        args.model = args.model_option
    try:
        args.cors_origin = _origins(args.cors_origin)
    except ValueError as error:
        print(f"codellama-serve: error: --allowed-origins: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    for name, value in (
        ("--port", args.port),
        ("--max-tokens-cap", args.max_tokens_cap),
        ("--max-batch-size", args.max_batch_size),
        ("--threads", args.threads),
        ("--draft-tokens", args.draft_tokens),
        ("--draft-ngram", args.draft_ngram),
    ):
        if value < (1 if name in ("--max-tokens-cap", "--draft-ngram") else 0):
            print(f"codellama-serve: error: {name} must be positive; got {value}", file=sys.stderr)
            return 2

    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if args.ray:
        try:
            from .ray_serve.runner import serve_on_ray
        except ImportError as missing:
            if (missing.name or "").partition(".")[0] != "ray":
                raise
            print('codellama-serve: error: --ray needs Ray Serve: pip install ".[ray]"', file=sys.stderr)
            return 2
        return serve_on_ray(args, api_key=api_key)

    import torch

    from .app import create_app
    from .engines.host import default_threads
    from .loading import EngineOptions, load

    # Chosen before anything runs on torch: the engine's thread decodes with the count its starter has.
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    speculation = PromptLookup(draft_tokens=args.draft_tokens, ngram=args.draft_ngram) if args.draft_tokens else None
    options = EngineOptions(
        max_batch_size=args.max_batch_size, prefix_cache_tokens=args.prefix_cache_tokens, speculation=speculation
    )
    try:
        served = load(args.model, dtype=args.dtype, device=args.device, options=options)
    except (OSError, ValueError) as error:
        print(f"codellama-serve: error: cannot load {args.model}: {error}", file=sys.stderr)
        return 1
    if api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("transformers_codellama.serving").warning(
            "serving on %s without an API key: anyone who can reach this address can use the model", args.host
        )
    name = args.model_name or args.model or DEFAULT_MODEL_NAME
    app = create_app(
        *served,
        model_name=name,
        api_key=api_key,
        max_tokens_cap=args.max_tokens_cap,
        max_body_bytes=args.max_body_bytes,
        cors_origins=args.cors_origin,
    )
    note = f"; {DEFAULT_MODEL_NOTE}" if args.model is None else ""
    dtype_name, device = served.facts.dtype, served.facts.device_type

    class AnnouncingServer(uvicorn.Server):
        """uvicorn's server, printing the start-up line once it listens."""

        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                host, port = _bound(self, args.host, args.port)
                print(
                    f"codellama-serve: {name} ({dtype_name}, {device}, {threads} threads{note}) at http://{host}:{port}",
                    file=sys.stderr,
                    flush=True,
                )

    server = AnnouncingServer(
        uvicorn.Config(app, host=args.host, port=args.port, access_log=False, log_level=args.log_level)
    )
    server.run()
    return 0


def _origins(values: Sequence[str]) -> list[str]:
    """The CORS origins of `--cors-origin` values: each an origin, or a JSON list of them (vLLM's `--allowed-origins`)."""
    origins: list[str] = []
    for value in values:
        if not value.lstrip().startswith(("[", "{")):
            origins.append(value)
            continue
        try:
            listed = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"{value!r} is not a JSON list of origins ({error})") from None
        if not isinstance(listed, list) or not all(isinstance(origin, str) for origin in listed):
            raise ValueError(f"{value!r} is not a JSON list of origins")
        origins += listed
    return origins


def _bound(server: object, host: str, port: int) -> tuple[str, int]:
    """The address actually bound (port 0 asks the system for a free port)."""
    for listener in getattr(server, "servers", []):
        for sock in getattr(listener, "sockets", []):
            address = sock.getsockname()
            return (f"[{address[0]}]" if ":" in address[0] else address[0]), address[1]
    return host, port


if __name__ == "__main__":
    sys.exit(main())
