"""Every code example in docs/ runs here, on tiny local stand-ins for the checkpoints the docs name.

Each page runs in a fresh interpreter (remote-code loading then writes only to a temporary modules cache), in a
scratch folder, its blocks in page order sharing one namespace: `>>>` blocks are doctests (their printed output is
checked), other Python blocks are executed, and shell blocks run this package's commands. Random tiny weights make
generated text meaningless, so most pages print generations without showing them; on the pages in `TRAINED_PAGES`
the base model's names stand for the package's small trained Code Llama instead, whose greedy outputs the pages show.
serving.md's examples talk to live servers started from the page's own `codellama-serve` lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from real_data import CODELLAMA_MODEL, LLAMA2_MODEL, REPO
from tiny_checkpoints import make_checkpoint

from transformers_codellama.conversion.convert import convert
from transformers_codellama.serving.cli import build_parser
from transformers_codellama.serving.default_model import DEFAULT_MODEL_NAME, load_default_model
from transformers_codellama.tiny_checkpoint import CONTEXT
from transformers_codellama.tiny_checkpoint import write_meta_checkpoint as write_trained_meta_checkpoint

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

# `pip install` on every page names only what the README installs (this package from a clone, its extras, torch).
PIP_INSTALL = re.compile(r"pip install ([^`\n&#]+)")

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
def serving_blocks(stand_ins):
    """serving.md's blocks, each talking to the server that the page's last `codellama-serve` line for its port
    started, as that line starts it: the model it names (its stand-in) under the name it gives (`--model-name`, else
    `MODEL` as written), or the package's small trained model when it names none. Hub ids are not replaced on this
    page: there they are only names, so an example naming another model than its server serves gets 404, as a
    reader's would."""
    from live_server import LiveServer, load, torch_app

    paths = {name: path for name, path in stand_ins.items() if not name.startswith("codellama/")}
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        blocks = []
        for match in FENCE.finditer((REPO / "docs" / "serving.md").read_text(encoding="utf-8")):
            language, source = match.group(1), match.group(2)
            for line in source.replace("\\\n", " ").splitlines() if language == "bash" else []:
                argv = shlex.split(line)
                if argv[:1] != ["codellama-serve"]:
                    continue
                args = build_parser().parse_args(argv[1:])
                if args.model is None:
                    (model, tokenizer), name = load_default_model(), args.model_name or DEFAULT_MODEL_NAME
                else:
                    model, tokenizer = load(Path(paths[args.model]))
                    name = paths.get(args.model_name or args.model, args.model_name or args.model)
                server = stack.enter_context(LiveServer(torch_app(model, tokenizer, model_name=name)))
                urls[f"http://127.0.0.1:{args.port}"] = server.url
            for name, replacement in {**paths, **urls}.items():
                source = source.replace(name, replacement)
            blocks.append((language, source))
        yield blocks


def test_every_pip_install_is_one_the_readme_uses():
    allowed = {target.strip() for target in PIP_INSTALL.findall((REPO / "README.md").read_text(encoding="utf-8"))}
    assert {'".[serve]"', "."} <= allowed, allowed
    for page in sorted((REPO / "docs").glob("*.md")):
        for target in PIP_INSTALL.findall(page.read_text(encoding="utf-8")):
            assert target.strip() in allowed, (
                f"{page.name}: pip install {target.strip()} (the README installs {allowed})"
            )


@pytest.mark.parametrize("page", DOCS, ids=[page.name for page in DOCS])
def test_page_examples_run(page, stand_ins, tmp_path, request):
    if page.name in TRAINED_PAGES:
        stand_ins = {**stand_ins, **dict.fromkeys(BASE_NAMES, request.getfixturevalue("trained_stand_in"))}
    blocks = request.getfixturevalue("serving_blocks") if page.name == "serving.md" else _blocks(page, stand_ins)
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
