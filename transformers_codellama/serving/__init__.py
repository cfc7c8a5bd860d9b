"""`codellama-serve`: an editor-facing completion server for Code Llama with Meta's exact fill-in-the-middle, speaking
OpenAI's completions and chat, Mistral's FIM completions, llama.cpp's `/infill` and `/completion`, TGI's `/generate`
and Ollama's `/api/generate` and `/api/chat`.

The folders, from the request to the model:

* `adapters/`: one package per protocol (`openai`, `mistral`, `llamacpp`, `tgi`, `ollama`), each its request and
  response bodies (`schema.py`) beside its endpoints and renderers (`routes.py`); what they share: the request context
  (`context.py`), prompts (`prompts.py`), sampling settings (`sampling.py`), one choice's run (`generation.py`),
  incremental text (`text_stream.py`), token bytes for log-probabilities (`token_text.py`).
* `http/`: what is HTTP and not a protocol: errors in each protocol's shape, stream framing (SSE, NDJSON), the
  middleware, `/metrics`, the playground page.
* `engines/`: the seam (`base.py`: `Engine`, `TokenStream`, `EngineRequest`, `EngineFeatures`), token choice
  (`sampling.py`), prompt-lookup drafting (`speculation.py`), the host's cores and memory (`host.py`), and the engines:
  `torch_batch/` (continuous batching over a transformers model: scheduler, rows, stream, batch, prefix cache).
* `ray_serve/`: the same app on Ray Serve replicas, with a prefix-routing front.

At the top: `app.py` assembles the ASGI app over an engine (`create_app`), `loading.py` chooses and builds the engine
for a MODEL argument, `cli.py` is `codellama-serve`, `defaults.py` the defaults they share, `default_model.py` the
package's small trained model.
"""
