"""The ways to run `codellama-convert` in a subprocess, shared by the converter's command-line tests."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODULE = "transformers_codellama.conversion.convert_codellama_weights_to_hf"
ENV = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _installed_script() -> Path:
    """`codellama-convert` where pip installed it with this package (not whatever PATH finds first): the
    distribution's own record, which also holds in a virtual environment that sees the package from outside."""
    distribution = importlib.metadata.distribution("transformers-codellama")
    for file in distribution.files or []:
        if file.name == "codellama-convert":
            return Path(str(distribution.locate_file(file))).resolve()
    raise FileNotFoundError("codellama-convert is not in the installed transformers-codellama's record")


INSTALLED_SCRIPT = _installed_script()


def run_cli(*args: str | Path, entry: str = "module", env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the converter's command line with `args`: as `python -m` (module), by path (script) or the installed
    script (console), always with this interpreter."""
    command = {
        "module": [sys.executable, "-m", MODULE],
        "script": [sys.executable, str(REPO / "conversion" / "convert_codellama_weights_to_hf.py")],
        "console": [sys.executable, str(INSTALLED_SCRIPT)],  # this interpreter, whichever pip wrote the shebang for
    }[entry]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=env or ENV, timeout=300)
