"""Self-contained checkpoints: Code Llama's code files and `auto_map` beside the weights.

`import transformers_codellama` registers the classes for their Auto classes, so `save_pretrained` (and
`push_to_hub`) of a Code Llama config, model or tokenizer already writes the `auto_map` and copies the defining
modules with their relative imports. `save_remote_code` does the same for a folder written by other means (the
converter streams weights and writes `config.json` itself). Either way the checkpoint loads through the Auto classes
with the plugin installed (no `trust_remote_code`) and, on a machine without it, with `trust_remote_code=True`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from transformers.dynamic_module_utils import get_relative_import_files

from .configuration_code_llama import MODEL_AUTO_MAP

TOKENIZER_AUTO_MAP = [
    "tokenization_code_llama.CodeLlamaTokenizer",
    "tokenization_code_llama_fast.CodeLlamaTokenizerFast",
]
# Found by name, not imported: the converter copies them without loading transformers' model code.
_ENTRY_MODULES = ("modeling_code_llama", "tokenization_code_llama", "tokenization_code_llama_fast")


def code_files() -> list[Path]:
    """The module files a checkpoint needs: the model's and the tokenizers', with everything they import relatively."""
    files: dict[str, Path] = {}
    for module in _ENTRY_MODULES:
        spec = importlib.util.find_spec(f"{__package__}.{module}")
        if spec is None or spec.origin is None:
            raise ImportError(f"{__package__}.{module} not found: is the package installed completely?")
        entry = Path(spec.origin)
        for path in [entry, *map(Path, get_relative_import_files(entry))]:
            files.setdefault(path.name, path)
    return sorted(files.values())


def _update_auto_map(path: Path, entries: dict[str, object]) -> None:
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    data["auto_map"] = {**data.get("auto_map", {}), **entries}
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def save_remote_code(save_directory: str | os.PathLike) -> list[Path]:
    """Make a saved Code Llama checkpoint loadable with `trust_remote_code=True` where the plugin is not installed.

    Copies the code files (`code_files()`) into `save_directory` and adds the Code Llama classes to the `auto_map`
    of its `config.json` and `tokenizer_config.json` (each only if present). Call it after writing both.

    Returns:
        The copied files.
    """
    folder = Path(save_directory)
    copied = []
    for source in code_files():
        target = folder / source.name
        shutil.copyfile(source, target)
        copied.append(target)
    _update_auto_map(folder / "config.json", dict(MODEL_AUTO_MAP))
    _update_auto_map(folder / "tokenizer_config.json", {"AutoTokenizer": TOKENIZER_AUTO_MAP})
    return copied


__all__ = ["TOKENIZER_AUTO_MAP", "code_files", "save_remote_code"]
