"""Command line: convert Meta's Code Llama checkpoints (`consolidated.NN.pth`) to the Hugging Face format.

    codellama-convert --input-dir CodeLlama-13b-Instruct --output-dir CodeLlama-13b-Instruct-hf --verify
    python -m transformers_codellama.conversion.convert_codellama_weights_to_hf --input_dir ... --output_dir ...

The work is done by `transformers_codellama.conversion.convert.convert`; this module only parses arguments, and
imports the converter (torch, transformers) only once they parse, so `--help` and argument errors are immediate when
it is started through the `codellama-convert` script (`conversion/codellama-convert`). Absolute imports, because
the file also runs as a script (`python path/to/convert_codellama_weights_to_hf.py`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from transformers_codellama.conversion.choices import DTYPE_NAMES, FORMATS
from transformers_codellama.conversion.errors import ConversionError
from transformers_codellama.releases import SHARDS_PER_SIZE, VARIANTS

if TYPE_CHECKING:
    from transformers_codellama.conversion.inputs import ConversionInputs


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also accepts the underscore spellings of the old transformers script)."""
    parser = argparse.ArgumentParser(
        prog="codellama-convert",
        description="Convert Meta's Code Llama checkpoint (consolidated.NN.pth, params.json, tokenizer.model) to a "
        "Hugging Face checkpoint: safetensors shards, config, generation config, tokenizer and model card. Tensors are "
        "streamed one at a time; the output appears only when complete.",
    )
    parser.add_argument(
        "--input-dir",
        "--input_dir",
        dest="input_dir",
        required=True,
        help="Meta's model directory, e.g. CodeLlama-13b-Instruct",
    )
    parser.add_argument(
        "--output-dir",
        "--output_dir",
        dest="output_dir",
        required=True,
        help="where to write the Hugging Face checkpoint (must be empty or absent unless --force)",
    )
    parser.add_argument(
        "--model-size",
        "--model_size",
        dest="model_size",
        choices=list(SHARDS_PER_SIZE),
        help="expected size; inferred from params.json, and an error if it disagrees",
    )
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        help="base, python or instruct; default: inferred from the input directory name "
        "(e.g. CodeLlama-7b-Python), else base",
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        help="dtype of the written weights; default: as stored (bfloat16 for Meta's releases)",
    )
    parser.add_argument(
        "--max-shard-size",
        "--max_shard_size",
        dest="max_shard_size",
        default="5GB",
        help="largest safetensors shard, e.g. 5GB, 500MB, 2GiB (default 5GB); tensors are streamed, "
        "so memory stays near one layer whatever this is",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=FORMATS,
        default="codellama",
        help="codellama (default): the plugin's CodeLlamaConfig plus code files for trust_remote_code; "
        "llama: a plain Llama checkpoint for stock transformers, vLLM, TGI and llama.cpp",
    )
    parser.add_argument(
        "--context-length",
        dest="context_length",
        type=int,
        help="the context in tokens the checkpoint declares (config, tokenizer, model card); default: Meta's release "
        "context (16384; 4096 for 70B Python and Instruct), right for Meta's models; set it for a model you "
        "trained at another context",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check checklist.chk md5 sums, then compare the converted model's logits with an "
        "independent forward of the original shards (layer by layer); fail above tolerance",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty output directory (only once the new checkpoint is complete)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the converter; prints a one-line summary, or `error: ...` and returns 1 for bad input."""
    args = build_parser().parse_args(argv)
    command = shlex.join(["codellama-convert", *(sys.argv[1:] if argv is None else argv)])
    arguments: ConversionInputs = {
        "input_dir": args.input_dir,
        "output_dir": args.output_dir,
        "model_size": args.model_size,
        "variant": args.variant,
        "dtype": args.dtype,
        "max_shard_size": args.max_shard_size,
        "output_format": args.output_format,
        "force": args.force,
        "command": command,
        "context_length": args.context_length,
    }
    try:
        if args.verify:  # loads both models: torch and transformers in this process
            from transformers_codellama.conversion.convert import convert

            result = convert(**arguments, verify=True)
        else:  # the weights here without torch, the rest in a child process at the same time
            from pathlib import Path

            from transformers_codellama.conversion.metadata_process import MetadataProcess

            # Started before importing the rest: it has the most to do. Stopped whatever happens.
            with MetadataProcess(Path(args.input_dir)) as metadata:
                from transformers_codellama.conversion.inputs import check_inputs
                from transformers_codellama.conversion.parallel import convert_in_parallel

                result = convert_in_parallel(check_inputs(**arguments), metadata)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
