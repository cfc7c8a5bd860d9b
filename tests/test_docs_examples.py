"""Every code example in docs/ runs here, on tiny local stand-ins for the checkpoints the docs name.

`>>>` blocks are doctests (their printed output is checked); other Python blocks are executed; shell blocks that
call this package's commands are run in a subprocess. Blocks on one page share a namespace, in page order.
Random tiny weights make generated text meaningless, so docs that print generations say so and show no output.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CODELLAMA_MODEL, LLAMA2_MODEL, REPO

DOCS = sorted((REPO / "docs").glob("*.md"))
COMMANDS = {
    "codellama-convert": "transformers_codellama.conversion.convert_codellama_weights_to_hf",
    "codellama-demo": "transformers_codellama.demo",
}
FENCE = re.compile(r"^```(python|bash|console)\n(.*?)^```", re.S | re.M)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, str]:
    """Local checkpoints standing in for the names the docs use."""
    from tests.tiny_checkpoints import random_model, save_checkpoint, tiny_config

    root = tmp_path_factory.mktemp("docs")
    base = save_checkpoint(root / "base", random_model(tiny_config()))
    instruct = save_checkpoint(root / "instruct", random_model(tiny_config(variant="instruct")), chat=True)
    python = save_checkpoint(
        root / "python",
        random_model(tiny_config(vocab_size=32000, variant="python", supports_infilling=False)),
        vocab_file=LLAMA2_MODEL,
    )
    meta = root / "CodeLlama-7b-Instruct"
    _write_meta_checkpoint(meta)
    (root / "CodeLlama-7b").mkdir()
    (root / "CodeLlama-7b" / "tokenizer.model").write_bytes(CODELLAMA_MODEL.read_bytes())
    return {
        "codellama/CodeLlama-7b-Instruct-hf": str(instruct),
        "codellama/CodeLlama-7b-Python-hf": str(python),
        "codellama/CodeLlama-7b-hf": str(base),
        "/path/to/CodeLlama-7b-Instruct": str(meta),
        "CodeLlama-7b/tokenizer.model": str(root / "CodeLlama-7b" / "tokenizer.model"),
        "__root__": str(root),
    }


def _write_meta_checkpoint(directory: Path) -> None:
    from tests.meta_checkpoints import TinyCodeLlama, write_meta_checkpoint

    write_meta_checkpoint(directory, TinyCodeLlama(n_shards=2))


def _blocks(page: Path) -> list[tuple[str, str]]:
    return [(match.group(1), match.group(2)) for match in FENCE.finditer(page.read_text(encoding="utf-8"))]


def _substitute(source: str, stand_ins: dict[str, str]) -> str:
    for name, path in stand_ins.items():
        if not name.startswith("__"):
            source = source.replace(name, path)
    return source


@pytest.mark.parametrize("page", DOCS, ids=[page.name for page in DOCS])
def test_page_examples_run(page, stand_ins, tmp_path, monkeypatch):
    blocks = _blocks(page)
    if not blocks:
        pytest.skip(f"{page.name} has no code examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for index, (language, source) in enumerate(blocks):
        source = _substitute(source, stand_ins)
        where = f"{page.name} example {index + 1}"
        if language == "python" and ">>>" in source:
            test = parser.get_doctest(source, namespace, where, str(page), 0)
            result = runner.run(test, clear_globs=False)
            namespace.update(test.globs)  # DocTest works on a copy of the namespace
            assert result.failed == 0, f"{where} printed something else than the page shows (see output above)"
        elif language == "python":
            exec(compile(source, where, "exec"), namespace)
        else:
            _run_shell(source, where, tmp_path)


def _run_shell(source: str, where: str, cwd: Path) -> None:
    commands = [line.removeprefix("$ ").strip() for line in source.replace("\\\n", " ").splitlines()]
    for command in commands:
        if not command or command.startswith("#") or not command.startswith(("codellama-", "python ")):
            continue  # pip installs and the like are not re-run here
        argv = shlex.split(command)
        if argv[0] in COMMANDS:  # the console scripts' own entry points, with this interpreter
            argv = [sys.executable, "-m", COMMANDS[argv[0]], *argv[1:]]
        elif argv[0] == "python":
            argv[0] = sys.executable
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
        assert done.returncode == 0, f"{where}: `{command}` failed:\n{done.stdout}\n{done.stderr}"
