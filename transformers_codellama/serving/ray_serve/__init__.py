"""transformers_codellama.serving.ray_serve."""
