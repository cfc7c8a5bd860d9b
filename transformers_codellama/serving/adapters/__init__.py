"""transformers_codellama.serving.adapters."""
