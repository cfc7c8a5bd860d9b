"""Bad input through the command line: one `error:` line naming the file and the problem, exit 1, no output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from real_data import CODELLAMA_MODEL

from transformers_codellama.conversion.convert_codellama_weights_to_hf import main

MODULE = "transformers_codellama.conversion.convert_codellama_weights_to_hf"
ENV = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false"}


class Evil:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _resave(path: Path, change: Callable[[dict], None]) -> None:
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


def _setup(name: str, root: Path) -> tuple[list[str], list[str]]:
    """Make a broken checkpoint for case `name` in `root`; return (extra CLI args, phrases the error must contain)."""
    source = root / "CodeLlama-7b"
    shards = {
        "missing_in_gap": 4,
        "missing_last": 2,
        "truncated": 2,
        "disagree_keys": 2,
        "disagree_values": 2,
        "disagree_shape": 2,
    }
    spec = TinyCodeLlama(dim=64, n_heads=4, n_shards=shards.get(name, 1))
    if name == "tokenizer_vocab":
        spec.tokenizer = CODELLAMA_MODEL
    write_meta_checkpoint(source, spec)
    shard0, shard1 = source / "consolidated.00.pth", source / "consolidated.01.pth"
    if name == "missing_in_gap":
        (source / "consolidated.02.pth").unlink()
        return [], ["consolidated.02.pth: shard is missing"]
    if name == "missing_last":
        shard1.unlink()
        return [], ["consolidated.00.pth", "should be 2 shards; found 1"]
    if name == "extra":
        shutil.copyfile(shard0, shard1)
        return [], ["consolidated.00.pth", "should be 1 shards; found 2", "consolidated.01.pth is extra"]
    if name == "no_shards":
        shard0.unlink()
        return [], ["CodeLlama-7b: no consolidated.NN.pth shards found"]
    if name == "truncated":
        data = shard1.read_bytes()
        shard1.write_bytes(data[: len(data) // 2])
        return [], ["consolidated.01.pth: truncated or corrupt shard"]
    if name == "corrupt":
        shard0.write_bytes(os.urandom(4096))
        return [], ["consolidated.00.pth: truncated or corrupt shard"]
    if name == "disagree_keys":
        _resave(shard1, lambda s: s.pop("layers.1.ffn_norm.weight"))
        return [], ["consolidated.01.pth: tensor layers.1.ffn_norm.weight is missing"]
    if name == "disagree_values":
        _resave(shard1, lambda s: s["layers.0.attention_norm.weight"].add_(1))
        return [], [
            "consolidated.01.pth: replicated tensor layers.0.attention_norm.weight differs",
            "consolidated.00.pth",
        ]
    if name == "disagree_shape":
        _resave(shard1, lambda s: s.update({"layers.0.attention.wq.weight": torch.zeros(40, 64, dtype=torch.bfloat16)}))
        return [], [
            "consolidated.01.pth: tensor layers.0.attention.wq.weight has shape (40, 64); params.json implies (32, 64)"
        ]
    if name == "params_shapes":
        (source / "params.json").write_text(
            (source / "params.json").read_text().replace('"multiple_of": 32', '"multiple_of": 100')
        )
        return [], [
            "consolidated.00.pth: tensor layers.0.feed_forward.w1.weight has shape (192, 64); params.json implies (200, 64)"
        ]
    if name == "params_vocab":
        (source / "params.json").write_text(
            (source / "params.json").read_text().replace('"vocab_size": 1000', '"vocab_size": 999')
        )
        return [], ["params.json: vocab_size is 999 but tok_embeddings.weight in consolidated.00.pth has 1000 rows"]
    if name == "params_missing":
        (source / "params.json").unlink()
        return [], ["params.json: file is missing"]
    if name == "params_invalid":
        (source / "params.json").write_text('{"dim": 64,')
        return [], ["params.json: not valid JSON"]
    if name == "tokenizer_missing":
        (source / "tokenizer.model").unlink()
        return [], ["tokenizer.model: file is missing"]
    if name == "tokenizer_vocab":
        return [], ["tokenizer.model: has 32016 pieces but tok_embeddings.weight has 1000 rows"]
    if name == "unknown_tensor":
        _resave(shard0, lambda s: s.update({"layers.0.attention.wz.weight": torch.zeros(4)}))
        return [], ["consolidated.00.pth: unknown tensor name 'layers.0.attention.wz.weight'"]
    if name == "model_size":
        return ["--model-size", "13B"], ["params.json: --model-size 13B disagrees with dim=64, n_layers=2"]
    if name == "non_empty_output":
        (root / "out").mkdir()
        (root / "out" / "mine.txt").write_text("keep me")
        return [], ["out: output directory is not empty (pass --force to replace it)"]
    if name == "pickled_code":
        _resave(shard0, lambda s: s.update({"payload": Evil(root / "pwned")}))
        return [], ["consolidated.00.pth: refused, the pickle holds code or objects", "posix.system"]
    raise AssertionError(name)


CASES = ["missing_in_gap", "missing_last", "extra", "no_shards", "truncated", "corrupt", "disagree_keys",
         "disagree_values", "disagree_shape", "params_shapes", "params_vocab", "params_missing", "params_invalid",
         "tokenizer_missing", "tokenizer_vocab", "unknown_tensor", "model_size", "non_empty_output", "pickled_code"]  # fmt: skip


# These run as real subprocesses too (exit status, nothing but the one line on stderr); all run in-process via main().
SUBPROCESS_CASES = ["truncated", "disagree_shape", "tokenizer_missing", "non_empty_output", "pickled_code"]


def _check(name: str, root: Path, phrases: list[str], returncode: int, stdout: str, stderr: str) -> None:
    assert returncode == 1, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for phrase in phrases:
        assert phrase in lines[0]
    assert stdout == ""
    if name == "non_empty_output":
        assert [(p.name, p.read_text()) for p in (root / "out").iterdir()] == [("mine.txt", "keep me")]
    else:
        assert not (root / "out").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no staging directory left
    assert not (root / "pwned").exists()  # the pickled payload never ran


def _argv(root: Path, args: list[str]) -> list[str]:
    return ["--input-dir", str(root / "CodeLlama-7b"), "--output-dir", str(root / "out"), *args]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_error_and_no_output(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args, phrases = _setup(name, tmp_path)
    returncode = main(_argv(tmp_path, args))
    captured = capsys.readouterr()
    _check(name, tmp_path, phrases, returncode, captured.out, captured.err)


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The subprocess cases, run in parallel since each is mostly interpreter start-up."""
    prepared = {}
    for name in SUBPROCESS_CASES:
        root = tmp_path_factory.mktemp(name)
        prepared[name] = (root, *_setup(name, root))

    def run(name: str) -> subprocess.CompletedProcess:
        root, args, _ = prepared[name]
        command = [sys.executable, "-m", MODULE, *_argv(root, args)]
        return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return {
            name: (prepared[name], result)
            for name, result in zip(SUBPROCESS_CASES, pool.map(run, SUBPROCESS_CASES), strict=True)
        }


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_bad_input_through_the_cli_process(subprocess_results: dict, name: str) -> None:
    (root, _, phrases), result = subprocess_results[name]
    assert "Traceback" not in result.stderr
    _check(name, root, phrases, result.returncode, result.stdout, result.stderr)


def test_pickled_code_never_runs(subprocess_results: dict) -> None:
    (root, _, _), result = subprocess_results["pickled_code"]
    assert result.returncode == 1 and not (root / "pwned").exists()


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--input-dir", "x"])
    assert exit_.value.code == 2 and "--output-dir" in capsys.readouterr().err


def test_help_explains_every_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0
    for option in (
        "--input-dir",
        "--output-dir",
        "--model-size",
        "--variant",
        "--dtype",
        "--max-shard-size",
        "--format",
        "--verify",
        "--force",
    ):
        assert option in text
