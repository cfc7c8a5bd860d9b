"""Conversion of Meta's Code Llama checkpoints to the Hugging Face format: `transformers_codellama.conversion`.

`convert.convert` is the function, `codellama-convert` (`convert_codellama_weights_to_hf`) the command line.
"""
