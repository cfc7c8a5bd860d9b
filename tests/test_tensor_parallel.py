"""Tensor parallel: a converted checkpoint under `torchrun --nproc_per_node 2` with `tp_plan="auto"` (CPU, gloo: the
code path NCCL takes on GPUs) gives one process's logits and pipeline outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from real_data import CODELLAMA_MODEL

WORKER = Path(__file__).resolve().parent / "tensor_parallel_worker.py"
MODULE = "transformers_codellama.conversion.convert_codellama_weights_to_hf"
ENV = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this torch build has no torch.distributed with the gloo backend",
)


def run(command: list[str], timeout: int = 300) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyCodeLlama, dict, dict]:
    root = tmp_path_factory.mktemp("tp")
    # Heads and kv heads split evenly over two processes, as every released size's do.
    spec = TinyCodeLlama(dim=64, n_heads=4, n_kv_heads=2, n_shards=2, tokenizer=CODELLAMA_MODEL, vocab_size=32016)
    write_meta_checkpoint(root / "CodeLlama-7b", spec)
    run([sys.executable, "-m", MODULE, "--input-dir", str(root / "CodeLlama-7b"), "--output-dir", str(root / "hf"),
         "--dtype", "float32"])  # fmt: skip
    run([sys.executable, str(WORKER), str(root / "hf"), str(root / "one.json")])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run([*torchrun, str(WORKER), str(root / "hf"), str(root / "two.json")])
    return spec, *(json.loads((root / name).read_text()) for name in ("one.json", "two.json"))


def test_weights_are_sharded_over_the_two_processes(outputs) -> None:
    spec, one, two = outputs
    assert (one["world"], two["world"]) == (1, 2)
    assert (one["q_proj_local_rows"], two["q_proj_local_rows"]) == (spec.dim, spec.dim // 2)


def test_logits_match_one_process(outputs) -> None:
    _, one, two = outputs
    for alone, sharded in zip(one["logits"], two["logits"], strict=True):
        assert (torch.tensor(sharded) - torch.tensor(alone)).abs().max() <= 1e-4


def test_pipeline_completion_and_infilling_match_one_process(outputs) -> None:
    _, one, two = outputs
    assert two["completion"] == one["completion"] and len(one["completion"]) > len("def fibonacci(n):\n")
    assert two["infill"] == one["infill"]
