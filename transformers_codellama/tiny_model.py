"""Moved to `transformers_codellama.training.tiny_model`; this name keeps existing imports and
`python -m transformers_codellama.tiny_model` working."""

from .training.tiny_model import (
    CONTEXT,
    DATA,
    LINE_SPM_RATE,
    LOG_PATH,
    MIX,
    PARAMS,
    SEED,
    WEIGHTS_PATH,
    build_parser,
    eot_weighted_loss,
    hf_config,
    line_split,
    main,
    meta_state_dict,
    stdlib_files,
    training_examples,
    write_meta_checkpoint,
)

__all__ = [
    "CONTEXT",
    "DATA",
    "LINE_SPM_RATE",
    "LOG_PATH",
    "MIX",
    "PARAMS",
    "SEED",
    "WEIGHTS_PATH",
    "build_parser",
    "eot_weighted_loss",
    "hf_config",
    "line_split",
    "main",
    "meta_state_dict",
    "stdlib_files",
    "training_examples",
    "write_meta_checkpoint",
]

if __name__ == "__main__":
    main()
