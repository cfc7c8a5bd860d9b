"""Serving Code Llama: the engine that batches generation requests (`engine`)."""

from .engine import Engine, EngineBusy, EngineError, EngineRequest, EngineStream, SamplingParams

__all__ = ["Engine", "EngineBusy", "EngineError", "EngineRequest", "EngineStream", "SamplingParams"]
