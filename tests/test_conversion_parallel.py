"""`codellama-convert` copies the weights without torch while a child process writes the other files: the same
bytes as torch's merge (and the in-process `convert`), the same errors, atomic, and no child outlives a failed or
interrupted run."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from converter_commands import ENV, INSTALLED_SCRIPT
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from real_data import CODELLAMA_MODEL
from weights_reference import write_reference_weights

from transformers_codellama.conversion import convert, weights
from transformers_codellama.conversion.errors import ConversionError
from transformers_codellama.conversion.meta_checkpoint import MetaCheckpoint

LAYOUTS = {
    "one shard": TinyCodeLlama(dim=64, n_heads=4, n_shards=1),
    "two shards": TinyCodeLlama(dim=64, n_heads=4, n_shards=2, multiple_of=64, ffn_dim_multiplier=1.3),
    # 8 query heads over 2 key/value heads in 2 shards: each shard holds whole heads of both.
    "grouped query": TinyCodeLlama(dim=128, n_heads=8, n_kv_heads=2, n_shards=2, tokenizer=CODELLAMA_MODEL,
                                   vocab_size=32016),
}  # fmt: skip


@pytest.mark.parametrize("block_bytes", [weights.BLOCK_BYTES, 1000])  # 1000: many blocks per tensor
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_copied_weights_are_the_tensor_paths_bytes(tmp_path: Path, layout: str, block_bytes: int, monkeypatch) -> None:
    write_meta_checkpoint(tmp_path / "meta", LAYOUTS[layout])
    checkpoint = MetaCheckpoint.open(tmp_path / "meta")
    write_reference_weights(checkpoint, tmp_path / "tensors", dtype=checkpoint.dtype, max_shard_size=200_000)
    monkeypatch.setattr(weights, "BLOCK_BYTES", block_bytes)
    (tmp_path / "bytes").mkdir()
    weights.write_weights(checkpoint, tmp_path / "bytes", dtype=checkpoint.dtype_name, max_shard_size=200_000)
    files = sorted(p.name for p in (tmp_path / "tensors").iterdir())
    assert len(files) > 2 and sorted(p.name for p in (tmp_path / "bytes").iterdir()) == files
    for name in files:
        assert (tmp_path / "bytes" / name).read_bytes() == (tmp_path / "tensors" / name).read_bytes(), name


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(INSTALLED_SCRIPT), *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("variant", "output_format", "extra"),
    [("Instruct", "codellama", []), ("Python", "llama", ["--context-length", "4096"])],
)
def test_command_line_writes_the_in_process_conversions_bytes(
    tmp_path: Path, variant: str, output_format: str, extra: list[str]
) -> None:
    source = tmp_path / f"CodeLlama-7b-{variant}"
    spec = TinyCodeLlama(dim=64, n_heads=4, n_shards=2, tokenizer=CODELLAMA_MODEL, vocab_size=32016)
    write_meta_checkpoint(source, spec)
    args = ["--input-dir", str(source), "--output-dir", str(tmp_path / "cli"), "--format", output_format]
    args += ["--max-shard-size", "100KB", *extra]
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    # The Python API converts in this process through torch; told the same command, it writes the same model card.
    convert.convert(input_dir=source, output_dir=tmp_path / "api", max_shard_size="100KB", output_format=output_format,
                    context_length=int(extra[1]) if extra else None, command=shlex.join(["codellama-convert", *args]))  # fmt: skip
    files = sorted(p.name for p in (tmp_path / "api").iterdir())
    assert sorted(p.name for p in (tmp_path / "cli").iterdir()) == files
    assert {"config.json", "generation_config.json", "tokenizer.json", "README.md"} <= set(files)
    assert sum(name.endswith(".safetensors") for name in files) > 2
    for name in files:
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes(), name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_the_converting_process_imports_neither_torch_nor_transformers(tmp_path: Path) -> None:
    source = tmp_path / "CodeLlama-7b"
    write_meta_checkpoint(source, TinyCodeLlama(dim=64, n_heads=4, n_shards=2))
    code = f"""
        import json, runpy, sys
        sys.argv = ["codellama-convert", "--input-dir", {str(source)!r}, "--output-dir", {str(tmp_path / "out")!r}]
        try:
            runpy.run_path({str(INSTALLED_SCRIPT)!r}, run_name="__main__")
        except SystemExit as exit:
            code = exit.code
        heavy = sorted({{name.split(".")[0] for name in sys.modules}} & {{"torch", "transformers", "tokenizers"}})
        print(json.dumps({{"code": code, "heavy": heavy}}))
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=ENV,
                          timeout=300)  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}, done.stderr
    assert (tmp_path / "out" / "config.json").is_file() and (tmp_path / "out" / "tokenizer.json").is_file()


# Runs the real command line, with the parent's job to the child or its weights changed for the test.
INSTRUMENTED = """
import sys, time
from transformers_codellama.conversion import metadata_process, writer
from transformers_codellama.conversion.convert_codellama_weights_to_hf import main
what, note = sys.argv[1], sys.argv[2]
start_writing, init = metadata_process.MetadataProcess.start_writing, metadata_process.MetadataProcess.__init__
if what == "child fails":  # the child is sent an input whose tokenizer.model is gone: only the child fails
    def failing(self, **job):
        start_writing(self, **{**job, "input_dir": note})
    metadata_process.MetadataProcess.start_writing = failing
else:  # the parent parks in its weights, after noting its child's pid, to be interrupted there
    def noting(self, *args):
        init(self, *args)
        open(note + ".child", "w").write(str(self.pid))
    def parked(self, name, blocks):
        open(note, "w").close()
        time.sleep(600)
    metadata_process.MetadataProcess.__init__ = noting
    writer.ShardWriter.write = parked
sys.exit(main(sys.argv[3:]))
"""


def test_a_failing_child_gives_the_in_process_error_and_leaves_nothing(tmp_path: Path) -> None:
    source, broken = tmp_path / "CodeLlama-7b", tmp_path / "broken"
    write_meta_checkpoint(source, TinyCodeLlama(dim=64, n_heads=4, n_shards=2))
    shutil.copytree(source, broken)
    (broken / "tokenizer.model").unlink()
    with pytest.raises(ConversionError) as in_process:
        MetaCheckpoint.open(broken)
    output = tmp_path / "out" / "model"
    args = ["--input-dir", str(source), "--output-dir", str(output)]
    done = subprocess.run([sys.executable, "-c", INSTRUMENTED, "child fails", str(broken), *args],
                          capture_output=True, text=True, env=ENV, timeout=300)  # fmt: skip
    assert done.returncode == 1 and done.stderr == f"error: {in_process.value}\n"
    assert list((tmp_path / "out").iterdir()) == []  # neither the output nor its staging directory


def test_an_interrupted_conversion_stops_its_child_and_leaves_nothing(tmp_path: Path) -> None:
    source, marker = tmp_path / "CodeLlama-7b", tmp_path / "marker"
    write_meta_checkpoint(source, TinyCodeLlama(dim=64, n_heads=4, n_shards=2))
    args = ["--input-dir", str(source), "--output-dir", str(tmp_path / "out" / "model")]
    # A command started in the background of a non-interactive shell inherits SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: the converter is given Ctrl-C's default back, as a terminal would start it.
    process = subprocess.Popen([sys.executable, "-c", INSTRUMENTED, "interrupt", str(marker), *args], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.communicate()[1]
    child = int((tmp_path / "marker.child").read_text())
    os.kill(process.pid, signal.SIGINT)  # Ctrl-C
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0 and b"KeyboardInterrupt" in stderr
    assert not psutil.pid_exists(child)  # killed and reaped by the parent before it exited
    assert list((tmp_path / "out").iterdir()) == []
