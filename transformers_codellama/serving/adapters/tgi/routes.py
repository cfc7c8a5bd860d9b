"""Text Generation Inference's API: `POST /generate`, `POST /generate_stream`, `POST /` and `GET /info`.

`POST /` is where `huggingface_hub.InferenceClient(base_url=...)` posts `text_generation` (a JSON array back, or a
stream with `"stream": true`); llm-vscode's TGI backend posts to `/generate`. `inputs` infills when it holds
`<FILL_ME>` (exactly as the pipeline) or is an editor template (`<PRE> {prefix} <SUF>{suffix} <MID>`, what llm-ls
sends); the generated text is then the middle. Parameters are validated as TGI does (e.g. `temperature > 0`,
`0 < top_p < 1`, at most 4 stop sequences); setting `temperature`, `top_k` or `top_p` turns sampling on, as in TGI.
Errors are `{"error", "error_type"}` with TGI's statuses (422 for invalid requests).

With `details` or `top_n_tokens`, each token's `logprob` (and its `top_tokens`) is that of the distribution it was
chosen from, as TGI's are: the log-softmax after `repetition_penalty`, `frequency_penalty`, the temperature and top-k /
top-p (-inf outside them, so `top_tokens` leaves those out); greedy: after the penalties at temperature 1. `decoder_input_details` gives `prefill`: each
prompt id's log-probability from the raw logits of the prefill's own forward (the first is null), as TGI's. The
penalties are TGI's: `repetition_penalty` is transformers' over the prompt and the output; `frequency_penalty` is
subtracted times each token's count over the prompt and the output divided by their length.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator
from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from .... import __version__
from ....infilling import FILL_TOKEN
from ...engines.sampling import TokenLogprob
from ...http.errors import TGI, Fields, ServingError
from ...http.framing import sse_event
from ..base import Adapter, refuse_unsupported, streamed, text_prompt
from ..context import Server, run_to_end, server_of
from ..generation import HELD_TEXT, ChoiceRequest, Generation
from ..prompts import Prompt
from ..sampling import sampling_params
from ..token_text import sampled_alternatives, token_texts
from .schema import TgiDetails, TgiParameters, TgiPrefillToken, TgiRequest, TgiResponse, TgiStreamEvent, TgiToken

router = APIRouter()
ADAPTER = Adapter(router, errors=TGI)
DEFAULT_MAX_NEW_TOKENS = 100  # TGI's default when a request sets none
# TGI marks the middle inside `inputs` (`<FILL_ME>` or an editor template): there is no suffix field of its own.
# The engine request's fields as TGI spells them: under `parameters`, TGI's frequency penalty the relative one.
ENGINE_FIELDS = {
    "logprobs": "parameters.details",
    "prompt_logprobs": "parameters.decoder_input_details",
    "sampling.relative_frequency_penalty": "parameters.frequency_penalty",
    **{
        f"sampling.{name}": f"parameters.{name}"
        for name in ("temperature", "top_p", "top_k", "seed", "repetition_penalty")
    },
}
FIELDS = Fields(prompt="inputs", suffix="inputs", max_tokens="parameters.max_new_tokens", engine=ENGINE_FIELDS)


def _full_text(prompt: Prompt, text: str) -> str:
    """`return_full_text`: a `<FILL_ME>` prompt gives the filled code (as the pipeline), any other the input + text."""
    if FILL_TOKEN in prompt.text:
        return prompt.prefix + text + prompt.suffix
    return prompt.text + text


def _finish(generation: Generation) -> Literal["length", "eos_token", "stop_sequence"]:
    if generation.stop_string is not None:
        return "stop_sequence"
    return "eos_token" if generation.finish_reason == "stop" else "length"


def _piece(server: Server, token_id: int) -> str:
    """A token's own text (SentencePiece's `▁` as a space), for `details.tokens`, `top_tokens` and `prefill`."""
    return token_texts(server.tokenizer, [token_id])[0].text


def _tokens(server: Server, records: list[TokenLogprob]) -> tuple[list[TgiToken], list[list[TgiToken]]]:
    """Each record's `TgiToken` and its top alternatives."""
    special = set(server.tokenizer.all_special_ids)

    def token(token_id: int, logprob: float) -> TgiToken:
        return TgiToken(id=token_id, text=_piece(server, token_id), logprob=logprob, special=token_id in special)

    return [token(record.token, record.logprob) for record in records], [
        [token(token_id, logprob) for token_id, logprob in sampled_alternatives(record)] for record in records
    ]


def _start(server: Server, body: TgiRequest, *, stream: bool = False) -> tuple[Generation, TgiParameters]:
    parameters = body.parameters
    refuse_unsupported(parameters, parameters.NEUTRAL, prefix="parameters.")
    if stream and parameters.decoder_input_details:
        message = "`decoder_input_details` == true is not supported when streaming tokens"
        raise ServingError(422, message, param="parameters.decoder_input_details")
    max_new_tokens = server.capped(parameters.max_new_tokens, DEFAULT_MAX_NEW_TOKENS)
    prompt = text_prompt(server, body.inputs, max_new_tokens=max_new_tokens, fields=FIELDS)
    sample = parameters.do_sample or any(
        value is not None for value in (parameters.temperature, parameters.top_k, parameters.top_p)
    )
    seed = parameters.seed
    if sample and seed is None:
        seed = random.randrange(2**63)  # reported back in `details`, as TGI does
    params = sampling_params(
        (parameters.temperature or 1.0) if sample else 0.0,
        parameters.top_p,
        parameters.top_k,
        seed if sample else None,
        repetition_penalty=parameters.repetition_penalty,
        relative_frequency_penalty=parameters.frequency_penalty,
    )
    # Log-probabilities cost a log-softmax per token and keep the request from speculating: only when shown.
    wanted = parameters.details or parameters.top_n_tokens is not None
    [generation] = server.start(
        [
            ChoiceRequest(
                prompt,
                max_new_tokens,
                params,
                stop=parameters.stop,
                fields=FIELDS,
                logprobs=(parameters.top_n_tokens or 0) if wanted else None,
                prompt_logprobs=parameters.decoder_input_details,
            )
        ]
    )
    return generation, parameters


def _details(
    server: Server, generation: Generation, parameters: TgiParameters, *, streamed: bool = False
) -> TgiDetails | None:
    if not parameters.details:
        return None
    details = TgiDetails(
        finish_reason=_finish(generation),
        generated_tokens=generation.completion_tokens,
        seed=generation.sampling.seed,
        input_length=generation.prompt_tokens,
    )
    if streamed:  # a stream's last event has the counts only, as TGI's
        return details
    details.tokens, top = _tokens(server, generation.token_logprobs)
    if parameters.top_n_tokens:
        details.top_tokens = top
    if parameters.decoder_input_details:
        details.prefill = [
            TgiPrefillToken(id=token_id, text=_piece(server, token_id), logprob=logprob)
            for token_id, logprob in zip(generation.prompt.ids, generation.prompt_logprobs, strict=True)
        ]
    return details


async def _generate(server: Server, body: TgiRequest, request: Request, *, full_text_default: bool) -> TgiResponse:
    generation, parameters = _start(server, body)
    await run_to_end(request, [generation])
    full = parameters.return_full_text if parameters.return_full_text is not None else full_text_default
    text = _full_text(generation.prompt, generation.text) if full else generation.text
    return TgiResponse(generated_text=text, details=_details(server, generation, parameters))


def _stream(server: Server, body: TgiRequest, request: Request, *, full_text_default: bool) -> Response:
    generation, parameters = _start(server, body, stream=True)
    full = parameters.return_full_text if parameters.return_full_text is not None else full_text_default
    special = set(server.tokenizer.all_special_ids)
    eos_id = server.tokenizer.eos_token_id
    assert eos_id is not None, "Code Llama's tokenizer always has </s>"

    def event(token: TgiToken, index: int, *, last: bool) -> str:
        payload = TgiStreamEvent(index=index, token=token)
        records = generation.token_logprobs
        if index - 1 < len(records) and records[index - 1].token == token.id:
            token.logprob = records[index - 1].logprob
            if parameters.top_n_tokens:
                payload.top_tokens = _tokens(server, [records[index - 1]])[1][0]
        if last:
            payload.generated_text = _full_text(generation.prompt, generation.text) if full else generation.text
            payload.details = _details(server, generation, parameters, streamed=True)
        return sse_event(payload.model_dump())

    async def events() -> AsyncGenerator[str, None]:
        # TGI sends one event per generated id and puts `generated_text` on the last, so each event waits for the next.
        pending: TgiToken | None = None
        index = 0
        async for delta in generation:
            if delta.token_id == HELD_TEXT:
                if pending is None:
                    pending = TgiToken(id=eos_id, text="", special=True)
                pending.text += delta.text
                continue
            if pending is not None:
                index += 1
                yield event(pending, index, last=False)
            pending = TgiToken(id=delta.token_id, text=delta.text, special=delta.token_id in special)
        if generation.stop_id is not None:
            if pending is not None:
                index += 1
                yield event(pending, index, last=False)
            pending = TgiToken(id=generation.stop_id, text="", special=True)
        if pending is None:
            pending = TgiToken(id=eos_id, text="", special=True)
        index += 1
        yield event(pending, index, last=True)

    return streamed(request, [generation], events(), errors=TGI)


@router.post("/generate", response_model=None)
async def generate(body: TgiRequest, request: Request) -> Response:
    """TGI `/generate`: `{generated_text, details?}` (the full text only with `return_full_text: true`)."""
    response = await _generate(server_of(request), body, request, full_text_default=False)
    return JSONResponse(response.model_dump(exclude_none=True))


@router.post("/generate_stream", response_model=None)
async def generate_stream(body: TgiRequest, request: Request) -> Response:
    """TGI `/generate_stream`: one event per generated id, `generated_text` on the last, no `[DONE]`."""
    return _stream(server_of(request), body, request, full_text_default=False)


@router.post("/", response_model=None)
async def compat_generate(body: TgiRequest, request: Request) -> Response:
    """TGI's compatibility route (`InferenceClient(base_url=...)`): an array, or a stream with `"stream": true`.

    As in TGI, the full text (prompt included) is the default here for a text-generation model.
    """
    server = server_of(request)
    if body.stream:
        return _stream(server, body, request, full_text_default=True)
    response = await _generate(server, body, request, full_text_default=True)
    return JSONResponse([response.model_dump(exclude_none=True)])


@router.get("/info", response_model=None)
async def info(request: Request) -> Response:
    """TGI's `/info` (Continue reads `model_id` and `max_input_length`)."""
    server = server_of(request)
    return JSONResponse(
        {
            "model_id": server.settings.model_name,
            "model_dtype": server.model.dtype,
            "model_device_type": server.model.device_type,
            "max_input_tokens": server.max_context - 1,
            "max_input_length": server.max_context - 1,
            "max_total_tokens": server.max_context,
            "max_stop_sequences": 4,
            "max_best_of": 1,
            "max_concurrent_requests": server.settings.max_choices,
            "router": "codellama-serve",
            "version": __version__,
        }
    )


__all__ = ["ADAPTER", "router"]
