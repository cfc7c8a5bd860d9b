"""A real uvicorn server on 127.0.0.1 in a background thread, running `create_app` over a tiny converted checkpoint.

Tests talk to it with real clients (`openai`, `huggingface_hub`, `httpx`) over TCP, so everything between the socket
and the engine (routing, validation, streaming, disconnects) is the production path.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from transformers import AutoModelForCausalLM, AutoTokenizer

import transformers_codellama  # noqa: F401  (registers Code Llama with the Auto classes)
from transformers_codellama.serving.app import create_app
from transformers_codellama.serving.loading import engine_options, torch_served


def load(checkpoint: Path) -> tuple[Any, Any]:
    """The model and tokenizer of a converted checkpoint, loaded as `codellama-serve` loads them."""
    return AutoModelForCausalLM.from_pretrained(checkpoint).eval(), AutoTokenizer.from_pretrained(checkpoint)


def torch_app(model: Any, tokenizer: Any, *, model_name: str, **options: Any) -> Any:
    """`create_app` over the torch batch engine on `model`; `options` are the engine's and the app's keywords."""
    engine, app_options = engine_options(options)
    return create_app(*torch_served(model, tokenizer, engine), model_name=model_name, **app_options)


class LiveServer:
    """`with LiveServer(app) as server:` serves `app` on 127.0.0.1 at `server.url` until the block ends."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(checkpoint: Path, *, model_name: str = "codellama-test", **options: Any) -> tuple[LiveServer, Any, Any]:
    """A `LiveServer` (not started) over `checkpoint`, with its model and tokenizer."""
    model, tokenizer = load(checkpoint)
    return LiveServer(torch_app(model, tokenizer, model_name=model_name, **options)), model, tokenizer
