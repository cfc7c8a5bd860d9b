"""Convert Meta's Code Llama checkpoints to Hugging Face safetensors, from a clone of this repository:

    python conversion/convert_codellama_weights_to_hf.py --input-dir CodeLlama-7b --output-dir CodeLlama-7b-hf --verify

The same command as the installed `codellama-convert` (`--help` lists the options), which is the script
`conversion/codellama-convert` that this file runs. The converter itself is the `transformers_codellama.conversion`
package; this folder holds only the scripts that start it.
"""

import runpy
from pathlib import Path

if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).with_name("codellama-convert")), run_name="__main__")
