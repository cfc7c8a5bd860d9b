"""llama.cpp's server: its request and response bodies (`schema`) and its endpoints (`routes`)."""

from .routes import ADAPTER

__all__ = ["ADAPTER"]
