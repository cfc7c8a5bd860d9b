"""transformers_codellama.serving.http."""
