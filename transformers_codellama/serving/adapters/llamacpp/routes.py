"""llama.cpp's server API: `POST /infill` as llama.vscode and llama.vim send and read it, `POST /completion` (what
Tabby's `llama.cpp/completion` kind and Continue's llama.cpp provider post), `/tokenize`, `/detokenize`, `/props`.

The prompt is Meta's infilling layout of `prefix = extra context + input_prefix + prompt` and `suffix = input_suffix`
(llama.cpp appends `prompt` to the prefix too; `input_extra` is laid out by `prompts.extra_context`), cut to the
infilling budget. `n_predict: 0` only evaluates the prompt (the editors' cache warm-up request); `-1` or no value
generates up to the server's cap. `/completion` takes a text (an editor template in it infills, as llama.cpp reads
its special tokens) or token ids used as given; `-1` or no `n_predict` generates up to the end of the context, at
most the cap. `n_cmpl` > 1 answers a JSON array. Streams send one partial object per generated
id, then the final object with `stop: true`, and no `[DONE]` (as llama.cpp). `GET /health` is llama.cpp's too
(llama.vscode reads its `status`). `n_probs` > 0 adds `completion_probabilities` (llama.cpp's current shape; with
`post_sampling_probs`, probabilities): to the result, or per token to each streamed partial object; the values are
those of the distribution each token was sampled from (`probabilities`).
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from .... import __version__
from ...engines.sampling import TokenLogprob
from ...http.errors import LLAMACPP, Fields, ServingError
from ...http.framing import sse_event
from ..base import Adapter, ids_prompt, refuse_unsupported, streamed, text_prompt, up_to_context
from ..context import Server, run_to_end, server_of
from ..generation import HELD_TEXT, ChoiceRequest, Generation, merged
from ..prompts import Prompt, extra_context
from ..sampling import sampling_params
from ..token_text import chances, check_vocabulary, piece_bytes
from .schema import DetokenizeRequest, InfillRequest, LlamaCppCompletionRequest, LlamaCppOptions, TokenizeRequest

router = APIRouter()
ADAPTER = Adapter(router, errors=LLAMACPP)
SAMPLERS = ["top_k", "top_p", "temperature"]  # the order the engine applies them in
BUDGET_FIELDS = ("n_predict", "max_tokens", "max_completion_tokens")  # llama.cpp's aliases, first set wins


def _stop_type(generation: Generation) -> Literal["none", "eos", "word", "limit"]:
    """llama.cpp's `stop_type`: `eos` (a stop id), `word` (a stop string), `limit` (a length or time limit)."""
    if generation.stop_string is not None:
        return "word"
    if generation.finish_reason == "stop":
        return "eos"
    return "limit" if generation.finish_reason == "length" else "none"


def _timings(generation: Generation) -> dict[str, Any]:
    prompt_ms = generation.prompt_seconds * 1000
    predicted_ms = generation.generation_seconds * 1000
    prompt_n = generation.prompt_tokens - generation.cached_tokens
    predicted_n = generation.completion_tokens
    return {
        "cache_n": generation.cached_tokens,
        "prompt_n": prompt_n,
        "prompt_ms": prompt_ms,
        "prompt_per_token_ms": prompt_ms / prompt_n if prompt_n else 0.0,
        "prompt_per_second": 1000 * prompt_n / prompt_ms if prompt_ms else 0.0,
        "predicted_n": predicted_n,
        "predicted_ms": predicted_ms,
        "predicted_per_token_ms": predicted_ms / predicted_n if predicted_n else 0.0,
        "predicted_per_second": 1000 * predicted_n / predicted_ms if predicted_ms else 0.0,
    }


def _final(server: Server, body: LlamaCppOptions, index: int, generation: Generation, *, streamed: bool) -> dict:
    """llama.cpp's final result object (in a stream its `content` is "": the text went out in the partial chunks)."""
    seed = generation.sampling.seed
    result: dict[str, Any] = {
        "index": index,
        "content": "" if streamed else generation.text,
        "tokens": [] if streamed or not body.return_tokens else list(generation.token_ids),
        "id_slot": max(body.id_slot, 0),
        "stop": True,
        "model": server.settings.model_name,
        "tokens_predicted": generation.completion_tokens,
        "tokens_evaluated": generation.prompt_tokens,
        "generation_settings": {
            "n_ctx": server.max_context,
            "model": server.settings.model_name,
            "seed": -1 if seed is None else seed,
            "temperature": generation.sampling.temperature,
            "top_k": generation.sampling.top_k,
            "top_p": generation.sampling.top_p,
            "n_predict": generation.max_new_tokens,
            "stop": list(body.stop),
            "samplers": SAMPLERS,
            "stream": body.stream,
            "n_probs": body.n_probs,
            "post_sampling_probs": body.post_sampling_probs,
        },
        "prompt": server.tokenizer.decode(generation.prompt.ids),
        "has_new_line": "\n" in generation.text,
        "truncated": generation.prompt.truncated,
        "stop_type": _stop_type(generation),
        "stopping_word": generation.stop_string or "",
        "tokens_cached": generation.cached_tokens,
        "timings": _timings(generation),
    }
    if body.n_probs and not streamed:
        result["completion_probabilities"] = probabilities(
            server, body, generation.token_logprobs[: generation.completion_tokens]
        )
    return result


def _utf8(piece: bytes) -> str:
    """A token's text as llama.cpp sends it in `completion_probabilities`: its bytes without an incomplete UTF-8
    character (a byte token's text is then "", its `bytes` say what it is)."""
    return piece.decode("utf-8", errors="ignore")


def probabilities(server: Server, body: LlamaCppOptions, records: Sequence[TokenLogprob]) -> list[dict[str, Any]]:
    """llama.cpp's `completion_probabilities` of `records`: per token its id, text, bytes and log-probability with its
    `n_probs` alternatives (`top_logprobs`); with `post_sampling_probs` probabilities instead (`prob`, `top_probs`)."""
    value, top = ("prob", "top_probs") if body.post_sampling_probs else ("logprob", "top_logprobs")

    def number(logprob: float) -> float:
        return math.exp(logprob) if body.post_sampling_probs else logprob

    entries = []
    for record in records:
        chosen, alternatives = chances(server.tokenizer, record)
        entries.append(
            {
                "id": chosen.id,
                "token": _utf8(chosen.piece),
                "bytes": list(chosen.piece),
                value: number(chosen.logprob),
                top: [
                    {
                        "id": other.id,
                        "token": _utf8(other.piece),
                        "bytes": list(other.piece),
                        value: number(other.logprob),
                    }
                    for other in alternatives
                ],
            }
        )
    return entries


def _only(fields: Sequence[str] | None, result: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp's `response_fields`: keep these fields; a path such as `timings/prompt_n` becomes a flat key."""
    if not fields:
        return result
    kept: dict[str, Any] = {}
    for path in fields:
        value: Any = result
        for part in path.split("/"):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            kept[path] = value
    return kept


# The engine request's fields as llama.cpp spells them (the sampling ones share their names).
ENGINE_FIELDS = {"logprobs": "n_probs"}


def _fields(body: LlamaCppOptions, *, prompt: str = "input_prefix", suffix: str = "input_suffix") -> Fields:
    """The request's field names, with the budget field it actually sent (`n_predict` or an alias)."""
    sent = next((name for name in BUDGET_FIELDS if getattr(body, name) is not None), BUDGET_FIELDS[0])
    return Fields(prompt=prompt, suffix=suffix, max_tokens=sent, engine=ENGINE_FIELDS)


def _prompt(server: Server, body: InfillRequest, max_new_tokens: int, fields: Fields) -> Prompt:
    """The infilling prompt of `input_extra` + `input_prefix` + `prompt` before `input_suffix`."""
    chunks = [{"filename": chunk.filename, "text": chunk.text} for chunk in body.input_extra]
    prefix = extra_context(chunks) + body.input_prefix + body.prompt
    return text_prompt(
        server,
        prefix,
        suffix=body.input_suffix,
        max_new_tokens=max_new_tokens,
        fields=fields,
        suffix_first=body.spm_infill,
    )


@router.post("/infill", response_model=None)
async def infill(body: InfillRequest, request: Request) -> Response:
    """Fill in the middle between `input_prefix` (+ `prompt`) and `input_suffix`."""
    server = server_of(request)
    refuse_unsupported(body, body.NEUTRAL)
    fields = _fields(body)
    max_new_tokens = server.capped(getattr(body, fields.max_tokens), server.settings.max_tokens_cap)
    prompt = _prompt(server, body, max_new_tokens, fields)
    return await _respond(server, body, request, prompt, max_new_tokens, fields)


@router.post("/completion", response_model=None)
@router.post("/completions", response_model=None)
async def completion(body: LlamaCppCompletionRequest, request: Request) -> Response:
    """llama.cpp's native completion of `prompt` (a text or token ids); an editor template in the text infills."""
    server = server_of(request)
    refuse_unsupported(body, body.NEUTRAL)
    fields = _fields(body, prompt="prompt", suffix="prompt")
    wanted = getattr(body, fields.max_tokens)
    open_ended = wanted is None or wanted < 0
    max_new_tokens = 0 if open_ended else server.capped(wanted, server.settings.max_tokens_cap)
    if isinstance(body.prompt, str):
        prompt = text_prompt(server, body.prompt, max_new_tokens=max_new_tokens, fields=fields)
    else:
        prompt = ids_prompt(server, body.prompt, max_new_tokens=max_new_tokens, fields=fields)
    if open_ended:
        max_new_tokens = up_to_context(server, prompt)
    return await _respond(server, body, request, prompt, max_new_tokens, fields)


async def _respond(
    server: Server, body: LlamaCppOptions, request: Request, prompt: Prompt, max_new_tokens: int, fields: Fields
) -> Response:
    """Run `prompt` as the request asks (`n_cmpl` choices, streamed or not) and answer in llama.cpp's shapes."""
    count = body.n_cmpl or body.n or 1
    server.check_choices(count, "n_cmpl" if body.n_cmpl is not None or body.n is None else "n")

    def choice_request(choice: int) -> ChoiceRequest:
        params = sampling_params(body.temperature, body.top_p, body.top_k, body.seed, choice=choice)
        return ChoiceRequest(
            prompt,
            max_new_tokens,
            params,
            stop=body.stop,
            time_limit_ms=body.t_max_predict_ms,
            fields=fields,
            logprobs=body.n_probs or None,
        )

    generations = server.start([choice_request(choice) for choice in range(count)])

    if not body.stream:
        await run_to_end(request, generations)
        results = [
            _only(body.response_fields, _final(server, body, index, generation, streamed=False))
            for index, generation in enumerate(generations)
        ]
        return JSONResponse(results if count > 1 else results[0])

    async def events() -> AsyncGenerator[str, None]:
        async for index, delta in merged(generations):
            generation = generations[index]
            if not delta.text and delta.token_id == HELD_TEXT:
                continue
            partial: dict[str, Any] = {
                "index": index,
                "content": delta.text,
                "tokens": [] if delta.token_id == HELD_TEXT else [delta.token_id],
                "stop": False,
                "id_slot": max(body.id_slot, 0),
                "tokens_predicted": generation.completion_tokens,
                "tokens_evaluated": generation.prompt_tokens,
            }
            if body.n_probs and delta.logprob is not None:
                partial["completion_probabilities"] = probabilities(server, body, [delta.logprob])
            yield sse_event(partial)
        for index, generation in enumerate(generations):
            yield sse_event(_final(server, body, index, generation, streamed=True))

    return streamed(request, generations, events(), errors=LLAMACPP)


def _pieces(server: Server, ids: Sequence[int]) -> list[bytes]:
    check_vocabulary(server.tokenizer, ids, "tokens")
    return piece_bytes(server.tokenizer, ids)


@router.post("/tokenize", response_model=None)
async def tokenize(body: TokenizeRequest, request: Request) -> Response:
    """`content`'s ids (BOS first with `add_special`), or `{id, piece}` pairs with `with_pieces` (a piece that is
    not whole UTF-8, a lone byte of a character, is its list of byte values, as llama.cpp sends it)."""
    server = server_of(request)
    if not body.parse_special:
        raise ServingError(
            400, "parse_special: false is not supported: this tokenizer always reads special-token text as the token"
        )
    ids = list(server.tokenizer(body.content, add_special_tokens=body.add_special)["input_ids"])
    if not body.with_pieces:
        return JSONResponse({"tokens": ids})
    tokens: list[dict[str, Any]] = []
    for token_id, piece in zip(ids, _pieces(server, ids), strict=True):
        try:
            tokens.append({"id": token_id, "piece": piece.decode()})
        except UnicodeDecodeError:
            tokens.append({"id": token_id, "piece": list(piece)})
    return JSONResponse({"tokens": tokens})


@router.post("/detokenize", response_model=None)
async def detokenize(body: DetokenizeRequest, request: Request) -> Response:
    """The text of `tokens`, their pieces joined as llama.cpp joins them (a first `▁` is a leading space)."""
    server = server_of(request)
    return JSONResponse({"content": b"".join(_pieces(server, body.tokens)).decode(errors="replace")})


@router.get("/props", response_model=None)
async def props(request: Request) -> Response:
    """llama.cpp's `/props`: the defaults a request starts from, the context size, the model."""
    server = server_of(request)
    defaults = LlamaCppOptions()
    return JSONResponse(
        {
            "default_generation_settings": {
                "id": 0,
                "n_ctx": server.max_context,
                "is_processing": False,
                "params": {
                    "n_predict": -1,
                    "seed": defaults.seed,
                    "temperature": defaults.temperature,
                    "top_k": defaults.top_k,
                    "top_p": defaults.top_p,
                    "stop": [],
                    "samplers": SAMPLERS,
                    "max_tokens_cap": server.settings.max_tokens_cap,
                },
            },
            "total_slots": server.settings.max_choices,
            "model_path": server.settings.model_name,
            "model_alias": server.settings.model_name,
            "chat_template": server.tokenizer.chat_template or "",
            "modalities": {"vision": False, "audio": False},
            "build_info": f"codellama-serve {__version__}",
        }
    )


@router.get("/health")
async def health() -> JSONResponse:
    """Ready (llama.vscode reads `status`)."""
    return JSONResponse({"status": "ok"})


__all__ = ["ADAPTER", "router"]
