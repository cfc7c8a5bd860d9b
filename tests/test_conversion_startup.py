"""Start-up: `codellama-convert --help` and argument errors import neither torch nor transformers, while a plain
`import transformers_codellama` (and so `python -m` of the converter's module) still registers Code Llama with the
Auto classes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from converter_commands import INSTALLED_SCRIPT

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "safetensors", "sentencepiece", "tokenizers", "numpy")


def _run(code: str) -> dict:
    """Run `code` in a fresh interpreter; it ends by printing a JSON object on its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


COMMAND_LINE = """
import contextlib, io, json, sys
{start}
stdout, stderr = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    try:
        {call}
        code = 0
    except SystemExit as exit:
        code = exit.code
heavy = sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r}))
print(json.dumps({{"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "heavy": heavy}}))
"""
# The script pip installed as `codellama-convert`, and the two scripts in conversion/ run by path from a clone.
SCRIPTS = {
    "console": INSTALLED_SCRIPT,
    "script": REPO / "conversion" / "convert_codellama_weights_to_hf.py",
    "clone": REPO / "conversion" / "codellama-convert",
}
ENTRIES = {
    name: (
        "import runpy",
        f"sys.argv = [{path.name!r}, *{{args!r}}]; runpy.run_path({str(path)!r}, run_name='__main__')",
    )
    for name, path in SCRIPTS.items()
}


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_help_imports_neither_torch_nor_transformers(entry: str) -> None:
    start, call = ENTRIES[entry]
    result = _run(COMMAND_LINE.format(start=start, call=call.format(args=["--help"]), heavy=HEAVY))
    assert result["code"] == 0 and "--input-dir" in result["stdout"] and "--format" in result["stdout"]
    assert "{7B,13B,34B,70B}" in result["stdout"] and "{bfloat16,float16,float32}" in result["stdout"]
    assert result["heavy"] == []


@pytest.mark.parametrize(
    "args", [["--input-dir", "in"], ["--input-dir", "in", "--output-dir", "out", "--dtype", "int8"]]
)
def test_argument_errors_import_neither_torch_nor_transformers(args: list[str]) -> None:
    start, call = ENTRIES["console"]
    result = _run(COMMAND_LINE.format(start=start, call=call.format(args=args), heavy=HEAVY))
    assert result["code"] == 2 and "error:" in result["stderr"]
    assert result["heavy"] == []


def test_conversion_after_parsing_checks_the_input_without_torch_or_transformers(tmp_path: Path) -> None:
    # Past the parser the converter runs: a bad input directory is reported by the converter itself, which checks
    # its input (and copies weights) without torch; transformers is imported by its child process alone.
    start, call = ENTRIES["console"]
    args = ["--input-dir", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "out")]
    result = _run(COMMAND_LINE.format(start=start, call=call.format(args=args), heavy=HEAVY))
    assert result["code"] == 1 and result["stderr"].startswith(f"error: {tmp_path / 'missing'}: input directory")
    assert "torch" not in result["heavy"] and "transformers" not in result["heavy"]


@pytest.mark.parametrize(
    "first_import",
    ["import transformers_codellama", "import transformers_codellama.conversion.convert", "import transformers"],
)
def test_plain_import_registers_with_the_auto_classes(first_import: str) -> None:
    # Whatever the user imports first, `import transformers_codellama` leaves Code Llama registered.
    result = _run(f"""
        import json
        {first_import}
        import transformers_codellama
        from transformers import AutoConfig
        from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING
        config = AutoConfig.for_model("codellama")
        print(json.dumps({{
            "config": type(config).__module__ + "." + type(config).__name__,
            "tokenizer": TOKENIZER_MAPPING[type(config)].__name__,
        }}))
    """)
    assert result == {
        "config": "transformers_codellama.configuration_code_llama.CodeLlamaConfig",
        "tokenizer": "CodeLlamaTokenizerFast",
    }


def test_public_names_load_on_first_use() -> None:
    result = _run("""
        import json, sys
        import transformers_codellama
        before = "transformers_codellama.training.fim" in sys.modules
        names = {name: type(getattr(transformers_codellama, name)).__name__ for name in transformers_codellama.__all__}
        try:
            transformers_codellama.NoSuchName
            missing = "no error"
        except AttributeError as error:
            missing = str(error)
        print(json.dumps({"before": before, "names": names, "dir": sorted(set(transformers_codellama.__all__) -
                          set(dir(transformers_codellama))), "missing": missing}))
    """)
    assert result["before"] is False  # not imported until used
    assert result["names"]["fim_example"] == "function" and result["names"]["CodeLlamaTokenizer"] == "type"
    assert result["names"]["TINY_MODEL_PATH"].endswith("Path") and result["names"]["__version__"] == "str"
    assert result["dir"] == []
    assert result["missing"] == "module 'transformers_codellama' has no attribute 'NoSuchName'"


REGISTERED_MAIN = """
import sys
import transformers
import transformers_codellama
from transformers_codellama.conversion.convert_codellama_weights_to_hf import main
assert "codellama" in transformers.models.auto.configuration_auto.CONFIG_MAPPING  # registered
sys.exit(main())
"""


def test_help_through_python_dash_m_registers_and_matches_the_script() -> None:
    # `python -m` imports the package before the module, and importing the package registers: only the environment
    # variable (which the scripts set) skips that. The same converter answers, after the slower start.
    module = "transformers_codellama.conversion.convert_codellama_weights_to_hf"
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", module, "--help"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("usage: codellama-convert"), done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert {"transformers_codellama", "transformers_codellama.registration", "transformers"} <= imported
    script = subprocess.run([sys.executable, str(SCRIPTS["script"]), "--help"], capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert script.returncode == 0 and script.stdout == done.stdout, script.stderr


@pytest.mark.parametrize("output_format", ["codellama", "llama"])
def test_console_script_writes_what_the_registered_package_writes(tmp_path: Path, output_format: str) -> None:
    # The console script converts without registering the Auto classes; the files must not depend on it.
    from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
    from real_data import CODELLAMA_MODEL

    spec = TinyCodeLlama(dim=64, n_heads=4, n_shards=2, tokenizer=CODELLAMA_MODEL, vocab_size=32016)
    write_meta_checkpoint(tmp_path / "CodeLlama-7b-Instruct", spec)
    entries = {
        "console": [sys.executable, str(INSTALLED_SCRIPT)],  # this interpreter, whichever pip wrote the shebang for
        # Imports the package first, which registers it (as `python -m` of the module does).
        "module": [sys.executable, "-c", REGISTERED_MAIN],
    }
    for name, command in entries.items():
        args = ["--input-dir", str(tmp_path / "CodeLlama-7b-Instruct"), "--output-dir", str(tmp_path / name)]
        args += ["--format", output_format, "--max-shard-size", "100KB"]
        done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "console").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "module").iterdir()) and "model.safetensors.index.json" in files
    for name in files:
        console, module = ((tmp_path / entry / name).read_bytes() for entry in entries)
        if name == "README.md":  # the model card quotes the command, which names its output folder
            console = console.replace(str(tmp_path / "console").encode(), str(tmp_path / "module").encode())
        assert console == module, name
