"""`convert()`: a Meta Code Llama checkpoint directory to a Hugging Face one, in this process.

The weights are copied by `weights.write_weights` (the same function the command line runs without torch); this
module adds what needs transformers: the config, tokenizer, code files and model card (`write_metadata`), and
`--verify`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import LlamaConfig

from .. import __version__
from ..chat import chat_template_for
from ..configuration_code_llama import CodeLlamaConfig
from ..remote_code import save_remote_code
from ..stopping import generation_config_for
from ..tokenization_code_llama_fast import CodeLlamaTokenizerFast
from .choices import DTYPE_NAMES, FORMATS
from .errors import ConversionError
from .inputs import ConversionInputs, ConversionJob, check_inputs
from .mapping import config_kwargs, max_context
from .meta_checkpoint import MetaCheckpoint
from .model_card import CardFacts, model_card, original_name
from .result import ConversionResult, peak_rss_bytes
from .stock_tokenizer import save_stock_tokenizer
from .weights import write_weights
from .writer import staged_output

if TYPE_CHECKING:
    from typing_extensions import Unpack

DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in DTYPE_NAMES}


def load_tokenizer(tokenizer_model: Path) -> Any:
    """The plugin's fast tokenizer for `tokenizer_model`, as loaded (no context, no chat template yet)."""
    try:
        return CodeLlamaTokenizerFast(vocab_file=str(tokenizer_model))
    except (ValueError, RuntimeError, OSError) as error:
        raise ConversionError(f"{tokenizer_model}: cannot build the Code Llama tokenizer ({error})") from None


def build_tokenizer(tokenizer_model: Path, *, variant: str, context_length: int, loaded: Any = None) -> Any:
    """The plugin's fast tokenizer for `tokenizer_model`, with the chat template for Instruct models.

    `loaded`: what `load_tokenizer(tokenizer_model)` returned earlier, to finish instead of loading again.
    """
    tokenizer = loaded if loaded is not None else load_tokenizer(tokenizer_model)
    tokenizer.model_max_length = context_length
    if variant == "instruct":
        tokenizer.chat_template = chat_template_for(tokenizer)
    return tokenizer


def build_config(
    checkpoint: MetaCheckpoint,
    *,
    variant: str,
    output_format: str,
    supports_infilling: bool,
    dtype: torch.dtype,
    context_length: int | None = None,
) -> LlamaConfig:
    """The model config: the plugin's CodeLlamaConfig, or a stock LlamaConfig for `--format llama`.

    `context_length` (default: Meta's release context for the size and variant) sets `max_position_embeddings`.
    """
    context = context_length or max_context(checkpoint.model_size, variant)
    kwargs = config_kwargs(
        checkpoint.params, vocab_size=checkpoint.vocab_size, max_position_embeddings=context, dtype=dtype
    )
    if output_format == "llama":
        config = LlamaConfig(**kwargs)
        config.architectures = ["LlamaForCausalLM"]
    else:
        config = CodeLlamaConfig(**kwargs, variant=variant, supports_infilling=supports_infilling)
        config.architectures = ["CodeLlamaForCausalLM"]
    return config


def write_metadata(
    checkpoint: MetaCheckpoint,
    staging: Path,
    *,
    variant: str,
    output_format: str,
    dtype: str | torch.dtype,
    command: str,
    context_length: int | None = None,
    tokenizer: Any = None,
) -> LlamaConfig:
    """Config, generation config, tokenizer, code files (Code Llama format) and model card; returns the config.

    `dtype`: of the written weights, a torch dtype or its name. `tokenizer`: `load_tokenizer(checkpoint.tokenizer_path)`,
    where it was loaded ahead (the parallel path).
    """
    weights_dtype: torch.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    size = checkpoint.model_size
    context = context_length or max_context(size, variant)
    # In process, built after the weights are written, so that the tokenizer's memory and the weights' never add up.
    tokenizer = build_tokenizer(checkpoint.tokenizer_path, variant=variant, context_length=context, loaded=tokenizer)
    infilling = bool(tokenizer.supports_infilling)
    config = build_config(
        checkpoint,
        variant=variant,
        output_format=output_format,
        supports_infilling=infilling,
        dtype=weights_dtype,
        context_length=context,
    )
    config.save_pretrained(staging)
    generation_config_for(config, tokenizer).save_pretrained(staging)  # stops on EOT / <step> where they apply
    if output_format == "codellama":
        tokenizer.save_pretrained(staging)
        save_remote_code(staging)  # code files + auto_map: loads with trust_remote_code, no plugin
    else:  # stock engines: exact ids through stock AutoTokenizer, no code files
        save_stock_tokenizer(
            tokenizer, staging, tokenizer_model=checkpoint.tokenizer_path, context_length=config.max_position_embeddings
        )
    facts = CardFacts(
        original_name=original_name(size, variant, checkpoint.directory.resolve().name),
        model_size=size,
        variant=variant,
        output_format=output_format,
        dtype=str(weights_dtype).removeprefix("torch."),
        vocab_size=checkpoint.vocab_size,
        context_length=config.max_position_embeddings,
        supports_infilling=infilling,
        converter_version=__version__,
        command=command,
    )
    (staging / "README.md").write_text(model_card(facts), encoding="utf-8")
    return config


def convert(*, verify: bool = False, **inputs: Unpack[ConversionInputs]) -> ConversionResult:
    """Convert Meta's Code Llama checkpoint in `input_dir` into a Hugging Face checkpoint in `output_dir`.

    Everything is checked before any tensor is converted; the output is written to a hidden directory beside
    `output_dir` and moved into place only once complete (and, with `verify`, once its logits match an independent
    forward of the original shards). Raises ConversionError for bad input.

    The keywords besides `verify` are `inputs.ConversionInputs`, which documents them: `input_dir` and `output_dir`,
    and optionally `model_size`, `variant`, `dtype`, `max_shard_size`, `output_format`, `force`, `command` and
    `context_length`.
    """
    return convert_checked(check_inputs(**inputs), verify=verify)


def convert_checked(job: ConversionJob, *, verify: bool = False) -> ConversionResult:
    """`convert` past its input checks: `job` is what `check_inputs` returned."""
    checkpoint = job.checkpoint
    if verify:
        checkpoint.verify_checksums()
    dtype = getattr(torch, job.dtype)
    difference = None
    with staged_output(job.output_dir, force=job.force) as staging:
        writer = write_weights(checkpoint, staging, dtype=job.dtype, max_shard_size=job.max_shard_size)
        config = write_metadata(checkpoint, staging, **job.metadata())
        if verify:  # before the move: a checkpoint that fails verification never appears at output_dir
            # Imported here: it loads transformers' model code (about a second), which only verification needs.
            from .verify import verify_conversion

            difference = verify_conversion(checkpoint, staging, config)
    return job.result(writer, dtype=dtype, peak_rss_bytes=peak_rss_bytes(), max_logit_difference=difference)


__all__ = [
    "DTYPES",
    "FORMATS",
    "ConversionResult",
    "build_config",
    "build_tokenizer",
    "convert",
    "convert_checked",
    "load_tokenizer",
    "write_metadata",
]
