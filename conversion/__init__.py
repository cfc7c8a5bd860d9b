"""Conversion of Meta's Code Llama checkpoints to the Hugging Face format (installed as `transformers_codellama.conversion`)."""
