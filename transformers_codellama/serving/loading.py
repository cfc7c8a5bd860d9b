"""Where engines are chosen: what `codellama-serve` and each Ray Serve replica serve for a MODEL argument.

`load(model, ...)` loads the model and its tokenizer and stands an engine over them; the app (`app.create_app`) takes
the three parts of the result and knows no engine class. Today every MODEL is a transformers checkpoint (a converted
folder, a Hub id, or none: the package's small trained model) served by the torch batch engine; another engine is
one more class satisfying `engines.base.Engine` and one more line in `load`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from transformers import PreTrainedModel

from .defaults import DEFAULT_MAX_QUEUE, DEFAULT_PREFIX_CACHE_TOKENS
from .engines.base import Engine, ModelFacts, Tokenizer
from .engines.speculation import PromptLookup

# The keywords that configure an engine rather than the app (the Ray deployment's `app` options carry both).
ENGINE_KEYWORDS = frozenset({"max_batch_size", "prefix_cache_tokens", "max_queue", "cache_memory", "speculation"})


@dataclass(frozen=True)
class EngineOptions:
    """How the engine batches and caches (the command line's `--max-batch-size`, `--prefix-cache-tokens`, ...).

    Attributes:
        max_batch_size: Requests decoded together at most (0: as many as its cache memory holds).
        prefix_cache_tokens: Tokens of prompt state kept for reuse by the next prompts (0: off).
        max_queue: Requests waiting for a slot before the server answers 503.
        cache_memory: Bytes the running batch's keys and values may take (None: a share of the free memory).
        speculation: Prompt-lookup drafting, or None for one token per request and step.
    """

    max_batch_size: int = 0
    prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS
    max_queue: int = DEFAULT_MAX_QUEUE
    cache_memory: int | None = None
    speculation: PromptLookup | None = None


class ServedModel(NamedTuple):
    """An engine ready to start, the tokenizer its prompts are built with, and what the endpoints report of the model
    (`create_app(*served, model_name=...)` takes them in this order)."""

    engine: Engine
    tokenizer: Tokenizer
    facts: ModelFacts


def torch_served(model: PreTrainedModel, tokenizer: Tokenizer, options: EngineOptions | None = None) -> ServedModel:
    """A loaded transformers `model` (eval mode, on its device) and its `tokenizer`, served by the torch batch
    engine."""
    from .engines.torch_batch.engine import TorchEngine, model_facts

    options = options or EngineOptions()
    engine = TorchEngine(
        model,
        max_batch_size=options.max_batch_size,
        prefix_cache_tokens=options.prefix_cache_tokens,
        max_queue=options.max_queue,
        cache_memory=options.cache_memory,
        speculation=options.speculation,
    )
    return ServedModel(engine, tokenizer, model_facts(model, tokenizer))


def load(
    model: str | None, *, dtype: str = "auto", device: str | None = None, options: EngineOptions | None = None
) -> ServedModel:
    """The served model of a MODEL argument: a converted checkpoint folder or Hub id, or None for the package's
    small trained model.

    Args:
        model: What to serve.
        dtype: The weights' dtype (`auto`: the checkpoint's; `float32`, `bfloat16`, `float16`).
        device: The torch device (default: cuda when there is one, else cpu).
        options: The engine's batching and caching.

    Raises:
        OSError, ValueError: The model cannot be loaded (a missing folder, an unknown Hub id, a bad checkpoint).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import transformers_codellama  # noqa: F401  (registers Code Llama with the Auto classes)

    from .default_model import load_default_model

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype: Any = "auto" if dtype == "auto" else getattr(torch, dtype)
    if model is None:
        loaded, tokenizer = load_default_model(torch_dtype)
    else:
        tokenizer = AutoTokenizer.from_pretrained(model)
        loaded = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype)
    return torch_served(loaded.to(device).eval(), tokenizer, options)


def engine_options(keywords: dict[str, Any]) -> tuple[EngineOptions, dict[str, Any]]:
    """`keywords` split into the engine's options and the rest (the app's)."""
    engine = {name: value for name, value in keywords.items() if name in ENGINE_KEYWORDS}
    return EngineOptions(**engine), {name: value for name, value in keywords.items() if name not in ENGINE_KEYWORDS}


__all__ = ["ENGINE_KEYWORDS", "EngineOptions", "ServedModel", "engine_options", "load", "torch_served"]
