"""transformers_codellama.serving.engines."""
