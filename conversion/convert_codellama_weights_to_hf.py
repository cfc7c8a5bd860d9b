"""Convert Meta's Code Llama checkpoints to Hugging Face safetensors, from a clone of this repository:

    python conversion/convert_codellama_weights_to_hf.py --input-dir CodeLlama-7b --output-dir CodeLlama-7b-hf --verify

The same command as the installed `codellama-convert` console script (`--help` lists the options). The converter
itself is the `transformers_codellama.conversion` package; this folder holds only the script to run it by path.
"""

from __future__ import annotations

import sys

from transformers_codellama_cli import convert

if __name__ == "__main__":
    sys.exit(convert())
