"""`codellama-serve`: an editor-facing completion server for Code Llama (OpenAI, llama.cpp `/infill` and TGI APIs).

`create_app(model, tokenizer, model_name=...)` (in `transformers_codellama.serving.app`) returns the ASGI app; the
`codellama-serve` command runs it with uvicorn. One engine (`engine`) owns the model and batches every request's
decoding steps; each protocol module turns its requests into engine requests and the generated ids into its wire
format.
"""

from .engine import Engine, EngineBusy, EngineError, EngineRequest, EngineStream, PromptLookup, SamplingParams

__all__ = ["Engine", "EngineBusy", "EngineError", "EngineRequest", "EngineStream", "PromptLookup", "SamplingParams"]
