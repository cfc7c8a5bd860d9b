"""The package's small trained Code Llama as it ships: its weights file, its shape, and its Meta checkpoint.

`data/tiny_codellama.safetensors` holds the weights under Meta's names and in Meta's rotary layout (bfloat16), with
its `params.json` fields in the file's metadata; `python -m transformers_codellama.training.tiny_model` trains it
(and rewrites it). `write_meta_checkpoint` lays it out as Meta's checkpoint folder for `codellama-convert`, as the
demo and the server's default model load it. The vocabulary is the package's tokenizer (`tiny_tokenizer`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from .tiny_tokenizer import TINY_MODEL_PATH

WEIGHTS_PATH = Path(__file__).parent / "data" / "tiny_codellama.safetensors"

CONTEXT = 192  # training context in tokens; prompts for this model should fit in it
# Meta's params.json fields for the shipped model.
PARAMS: dict[str, Any] = {
    "dim": 128,
    "n_layers": 8,
    "n_heads": 8,
    "n_kv_heads": 8,
    "multiple_of": 32,
    "ffn_dim_multiplier": None,
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "vocab_size": -1,
}


def write_meta_checkpoint(directory: str | Path, weights: str | Path = WEIGHTS_PATH) -> Path:
    """Write the shipped trained model (or `weights`, a file its training script wrote) as a Meta checkpoint folder:
    `consolidated.00.pth`, `params.json`, `tokenizer.model` (the input `codellama-convert` takes). Returns it.

    The file already holds Meta's names and layout, so its tensors are saved as they are; the converter checks them
    against `params.json` when it reads the folder.
    """
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        params = (handle.metadata() or {}).get("params")
        if params is None:
            raise ValueError(f"{weights}: no 'params' in the file's metadata; expected a file the tiny model's "
                             "training script wrote (python -m transformers_codellama.training.tiny_model)")  # fmt: skip
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118  # safe_open has no iter
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(tensors, directory / "consolidated.00.pth")
    (directory / "params.json").write_text(json.dumps(json.loads(params), indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(TINY_MODEL_PATH, directory / "tokenizer.model")
    return directory


__all__ = ["CONTEXT", "PARAMS", "WEIGHTS_PATH", "write_meta_checkpoint"]
