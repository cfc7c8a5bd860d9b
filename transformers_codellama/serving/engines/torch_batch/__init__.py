"""transformers_codellama.serving.engines.torch_batch."""
