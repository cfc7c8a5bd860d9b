"""Every code example in docs/ runs here, on tiny local stand-ins for the checkpoints the docs name.

Each page runs in a fresh interpreter (remote-code loading then writes only to a temporary modules cache), in a
scratch folder, its blocks in page order sharing one namespace: `>>>` blocks are doctests (their printed output is
checked), other Python blocks are executed, and shell blocks run this package's commands. Random tiny weights make
generated text meaningless, so most pages print generations without showing them; on the pages in `TRAINED_PAGES`
the base model's names stand for the package's small trained Code Llama instead, whose greedy outputs the pages show.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from real_data import CODELLAMA_MODEL, LLAMA2_MODEL, REPO
from tiny_checkpoints import make_checkpoint

from transformers_codellama.conversion.convert import convert
from transformers_codellama.training.tiny_model import CONTEXT
from transformers_codellama.training.tiny_model import write_meta_checkpoint as write_trained_meta_checkpoint

DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
FENCE = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)
# The console scripts, run through their entry modules with this interpreter.
COMMANDS = {
    "codellama-convert": "transformers_codellama.conversion.convert_codellama_weights_to_hf",
    "codellama-demo": "transformers_codellama.demo",
}

# On these pages the base checkpoint's names stand for the small trained model (converted from Meta's layout).
TRAINED_PAGES = {"index.md", "model_and_pipelines.md"}
BASE_NAMES = ("codellama/CodeLlama-7b-hf", "path/to/converted/CodeLlama-7b-hf")

# serving.md's examples talk to a server on these addresses, serving these models.
SERVED = {
    "http://127.0.0.1:8080": "codellama/CodeLlama-7b-hf",
    "http://127.0.0.1:8081": "codellama/CodeLlama-7b-Instruct-hf",
}

_RUNNER = r"""
import doctest, json, shlex, subprocess, sys
page, blocks, commands = json.loads(sys.stdin.read())
namespace = {"__name__": "__docs__"}
parser = doctest.DocTestParser()
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
for index, (language, source) in enumerate(blocks):
    where = f"{page} example {index + 1}"
    if language == "python" and ">>>" in source:
        test = parser.get_doctest(source, namespace, where, page, 0)
        if runner.run(test, clear_globs=False).failed:
            sys.exit(f"{where}: the output differs from the page (see above)")
        namespace.update(test.globs)  # a DocTest works on a copy of the namespace
    elif language == "python":
        exec(compile(source, where, "exec"), namespace)
    else:
        for line in source.replace("\\\n", " ").splitlines():
            argv = shlex.split(line.removeprefix("$ "))
            if argv and argv[0] == "curl":  # against the live server the test started for the page
                done = subprocess.run([*argv, "--fail-with-body", "--max-time", "300"], capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"{where}: {line!r} failed:\n{done.stdout}\n{done.stderr}")
                continue
            if not argv or argv[0] not in commands:
                continue  # pip installs, servers and the like are not re-run here
            done = subprocess.run([sys.executable, "-m", commands[argv[0]], *argv[1:]], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{where}: {line!r} failed:\n{done.stdout}\n{done.stderr}")
print(f"{len(blocks)} examples ran")
"""


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, str]:
    """Local checkpoints standing in for the names the docs use."""
    root = tmp_path_factory.mktemp("docs")
    base = make_checkpoint(root / "base")
    instruct = make_checkpoint(root / "instruct", variant="instruct")
    python = make_checkpoint(root / "python", variant="python", vocab_file=LLAMA2_MODEL)
    write_meta_checkpoint(root / "CodeLlama-7b-Instruct", TinyCodeLlama(n_shards=2))
    (root / "CodeLlama-7b").mkdir()
    (root / "CodeLlama-7b" / "tokenizer.model").write_bytes(CODELLAMA_MODEL.read_bytes())
    names = {
        "codellama/CodeLlama-7b-Instruct-hf": instruct,
        "codellama/CodeLlama-7b-Python-hf": python,
        "codellama/CodeLlama-7b-hf": base,
        "path/to/converted/CodeLlama-7b-Instruct-hf": instruct,
        "path/to/converted/CodeLlama-7b-Python-hf": python,
        "path/to/converted/CodeLlama-7b-hf": base,
        "/path/to/CodeLlama-7b-Instruct": root / "CodeLlama-7b-Instruct",
        "CodeLlama-7b/tokenizer.model": root / "CodeLlama-7b" / "tokenizer.model",
    }
    return {name: str(path) for name, path in names.items()}


@pytest.fixture(scope="module")
def trained_stand_in(tmp_path_factory) -> str:
    """The package's shipped trained model, written in Meta's layout and converted as a user would."""
    root = tmp_path_factory.mktemp("trained")
    meta = write_trained_meta_checkpoint(root / "CodeLlama-tiny")
    convert(input_dir=meta, output_dir=root / "converted", context_length=CONTEXT)
    return str(root / "converted")


def _blocks(page: Path, stand_ins: dict[str, str]) -> list[tuple[str, str]]:
    blocks = []
    for match in FENCE.finditer(page.read_text(encoding="utf-8")):
        source = match.group(2)
        for name, path in stand_ins.items():
            source = source.replace(name, path)
        blocks.append((match.group(1), source))
    return blocks


@pytest.fixture(scope="module")
def live_servers(stand_ins):
    """The servers serving.md talks to (its URLs mapped to live ones), over the stand-ins of the models it names."""
    from live_server import serve

    with contextlib.ExitStack() as stack:
        urls = {}
        for address, name in SERVED.items():
            server, _, _ = serve(Path(stand_ins[name]), model_name=stand_ins[name])
            urls[address] = stack.enter_context(server).url
        yield urls


@pytest.mark.parametrize("page", DOCS, ids=[page.name for page in DOCS])
def test_page_examples_run(page, stand_ins, tmp_path, request):
    if page.name == "serving.md":
        stand_ins = {**stand_ins, **request.getfixturevalue("live_servers")}
    if page.name in TRAINED_PAGES:
        stand_ins = {**stand_ins, **dict.fromkeys(BASE_NAMES, request.getfixturevalue("trained_stand_in"))}
    blocks = _blocks(page, stand_ins)
    if not blocks:
        pytest.skip(f"{page.name} has no code examples")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    if page.name == "serving.md":
        env["HF_HUB_OFFLINE"] = "0"  # huggingface_hub's offline mode refuses even a local server's URL
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps([page.name, blocks, COMMANDS]),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    assert done.stdout.strip().endswith(f"{len(blocks)} examples ran")
