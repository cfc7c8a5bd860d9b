"""Where a request's sampling fields become the engine's `SamplingParams`, for every protocol.

Each protocol's defaults sit beside its request model (`schema.py`: OpenAI's temperature 1, llama.cpp's 0.8 / 40 /
0.95, Ollama's 0.8 / 40 / 0.9); what they mean is decided here, once:

* temperature 0 (or below, llama.cpp's way of asking for greedy) or a nucleus `top_p` of 0 is greedy;
* a seed that is unset or negative (llama.cpp's and Ollama's -1) draws a fresh one; a set seed is advanced by the
  choice's index, so the choices of one request differ and each is reproducible;
* a penalty left unset is off.
"""

from __future__ import annotations

from ..engines.sampling import SamplingParams


def sampling_params(
    temperature: float | None,
    top_p: float | None,
    top_k: int | None,
    seed: int | None,
    *,
    choice: int = 0,
    **penalties: float | None,
) -> SamplingParams:
    """The engine's `SamplingParams` for choice `choice` of a request with these values (None: unset).

    `penalties` are `SamplingParams`' penalty fields (`repetition_penalty`, `frequency_penalty`, ...).
    """
    temperature = 1.0 if temperature is None else max(0.0, temperature)
    top_p = 1.0 if top_p is None else top_p
    if top_p <= 0:
        temperature, top_p = 0.0, 1.0
    chosen = {name: float(value) for name, value in penalties.items() if value is not None}
    seed = None if seed is None or seed < 0 else seed + choice
    return SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k or 0, seed=seed, **chosen)


__all__ = ["sampling_params"]
