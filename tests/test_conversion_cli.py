"""End to end: tiny Meta-layout checkpoints through the command line, loaded back and compared with Meta's forward."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import torch
from converter_commands import ENV, run_cli
from meta_checkpoints import (
    TinyCodeLlama,
    reference_greedy,
    reference_logits,
    write_meta_checkpoint,
)
from real_data import CODELLAMA_MODEL, LLAMA2_MODEL
from safetensors import safe_open
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import transformers_codellama  # noqa: F401  (registers the Auto classes)

PROMPTS = ([1, 5, 17, 300, 42, 7], [1, 900, 3, 3, 64])


@dataclass
class Case:
    directory: str
    spec: TinyCodeLlama
    variant: str
    infilling: bool
    eos: int | list[int]
    args: tuple[str, ...] = ()
    entry: str = "module"
    dtype: torch.dtype = torch.bfloat16


CASES = {
    # 7B-like: one shard, n_kv_heads and ffn_dim_multiplier null, rope.freqs present, the tiny infilling tokenizer.
    "7b": Case("CodeLlama-7b", TinyCodeLlama(dim=64, n_heads=4, n_shards=1, rope_freqs=True,
               extra_params={"n_kv_heads": None, "ffn_dim_multiplier": None}),
               "base", True, [2, 994], ("--verify",), "script"),
    # 34B-like: four shards, grouped-query attention, vocab 32000 and no infilling, vocab_size -1, small output shards.
    "34b": Case("CodeLlama-34b-Python", TinyCodeLlama(dim=128, n_heads=8, n_kv_heads=4, n_shards=4, tokenizer=LLAMA2_MODEL,
                vocab_size=32000, vocab_in_params="minus_one", ffn_dim_multiplier=1.0),
                "python", False, 2, ("--max-shard-size", "2MB"), "console"),
    # 70B-like: two shards, 8 heads over 2 kv heads, multiple_of/ffn_dim_multiplier, vocab 32016 absent from params.
    "70b": Case("CodeLlama-70b-Instruct", TinyCodeLlama(dim=128, n_heads=8, n_kv_heads=2, n_shards=2, multiple_of=64,
                ffn_dim_multiplier=1.3, tokenizer=CODELLAMA_MODEL, vocab_size=32016, vocab_in_params="absent", rope_theta=1e4),
                "instruct", True, [2, 32010], ("--dtype", "float32"), "module", torch.float32),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(CASES))
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    case = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    weights = write_meta_checkpoint(root / case.directory, case.spec, seed=len(request.param))
    result = run_cli("--input_dir", root / case.directory, "--output_dir", root / "hf", *case.args, entry=case.entry)
    assert result.returncode == 0, result.stderr
    return case, weights, root / "hf", result


def test_cli_prints_one_summary_line(converted) -> None:
    case, _, output, result = converted
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("wrote ")
    assert str(output) in result.stdout and "peak RSS" in result.stdout
    assert ("verified (max logit diff" in result.stdout) == ("--verify" in case.args)


def test_config_and_files(converted) -> None:
    case, _, output, _ = converted
    config = AutoConfig.from_pretrained(output)
    spec = case.spec
    assert type(config).__name__ == "CodeLlamaConfig" and config.model_type == "codellama"
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (
        spec.dim,
        spec.n_layers,
        spec.n_heads,
    )
    assert config.num_key_value_heads == spec.kv_heads and config.intermediate_size == spec.hidden
    assert config.vocab_size == spec.vocab_size and config.max_position_embeddings == 16384
    assert config.rope_parameters["rope_theta"] == spec.rope_theta
    assert (config.variant, config.supports_infilling) == (case.variant, case.infilling)
    assert config.dtype == case.dtype
    assert json.loads((output / "generation_config.json").read_text())["eos_token_id"] == case.eos
    assert_auto_map_is_loadable(output)
    card = (output / "README.md").read_text()
    assert card.startswith("---\nlicense: llama2\nlibrary_name: transformers\npipeline_tag: text-generation\n")
    assert case.directory in card
    names = set()
    for file in output.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as reader:
            names |= set(reader.keys())
    assert len(names) == 3 + 9 * spec.n_layers and not any("rope" in n for n in names)
    assert (output / "model.safetensors.index.json").is_file() == (len(list(output.glob("*.safetensors"))) > 1)
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no staging left behind


def assert_auto_map_is_loadable(output: Path) -> None:
    """Every class the checkpoint's auto_map names is defined in a code file saved beside the weights."""
    config_map = json.loads((output / "config.json").read_text())["auto_map"]
    tokenizer_map = json.loads((output / "tokenizer_config.json").read_text())["auto_map"]
    assert set(config_map) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM"}
    assert set(tokenizer_map) == {"AutoTokenizer"} and len(tokenizer_map["AutoTokenizer"]) == 2
    entries = [*config_map.values(), *tokenizer_map["AutoTokenizer"]]
    assert {entry.rsplit(".", 1)[1] for entry in entries} == {
        "CodeLlamaConfig", "CodeLlamaModel", "CodeLlamaForCausalLM", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"
    }  # fmt: skip
    for entry in entries:
        module, name = entry.rsplit(".", 1)
        assert f"\nclass {name}(" in (output / f"{module}.py").read_text(), entry


def test_tokenizer(converted) -> None:
    case, _, output, _ = converted
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert type(tokenizer).__name__ == "CodeLlamaTokenizerFast" and len(tokenizer) == case.spec.vocab_size
    assert tokenizer.supports_infilling == case.infilling
    assert (tokenizer.chat_template is not None) == (case.variant == "instruct")


def test_logits_match_meta_forward(converted) -> None:
    case, weights, output, _ = converted
    model = AutoModelForCausalLM.from_pretrained(output, dtype=torch.float32)
    assert type(model).__name__ == "CodeLlamaForCausalLM"
    for tokens in PROMPTS:
        expected = reference_logits(weights, case.spec, tokens)
        with torch.no_grad():
            found = model(torch.tensor([tokens])).logits[0]
        assert (found - expected).abs().max() <= 1e-4


def test_greedy_generation_matches_meta(converted) -> None:
    case, weights, output, _ = converted
    model = AutoModelForCausalLM.from_pretrained(output, dtype=torch.float32)
    tokens = list(PROMPTS[0])
    generated = model.generate(
        torch.tensor([tokens]), max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0
    )
    assert generated[0].tolist() == reference_greedy(weights, case.spec, tokens, 8)


LOADER = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
path, kind = sys.argv[1], sys.argv[2]
if kind == "llama":
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
else:
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=kind != "llama")
assert "transformers_codellama" not in sys.modules
logits = [model(torch.tensor([t])).logits[0].tolist() for t in json.loads(sys.argv[3])]
print(json.dumps({"class": type(model).__name__, "model_type": model.config.model_type, "logits": logits,
                  "eos": model.generation_config.eos_token_id, "tokenizer_length": len(tokenizer)}))
"""


def _load_without_plugin(path: Path, kind: str, home: Path) -> dict:
    # A fresh interpreter that never imports the plugin: stock classes, or the checkpoint's own code files.
    env = {**ENV, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", LOADER, str(path), kind, json.dumps(PROMPTS)],
                            capture_output=True, text=True, env=env, timeout=300, cwd=home)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_format_llama_loads_in_stock_transformers(tmp_path: Path) -> None:
    case = CASES["70b"]
    weights = write_meta_checkpoint(tmp_path / case.directory, case.spec)
    result = run_cli("--input-dir", tmp_path / case.directory, "--output-dir", tmp_path / "llama", "--format", "llama")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "llama" / "config.json").read_text())
    assert (
        config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"] and "auto_map" not in config
    )
    loaded = _load_without_plugin(tmp_path / "llama", "llama", tmp_path)
    assert loaded["class"] == "LlamaForCausalLM" and loaded["eos"] == [2, 32010]
    assert loaded["tokenizer_length"] == 32016  # the model's vocabulary: no phantom <FILL_ME> token
    for tokens, logits in zip(PROMPTS, loaded["logits"], strict=True):
        assert (torch.tensor(logits) - reference_logits(weights, case.spec, tokens)).abs().max() <= 1e-4


@pytest.mark.parametrize("converted", ["7b"], indirect=True)  # the code files do not depend on the shape
def test_codellama_format_loads_with_trust_remote_code_without_plugin(converted, tmp_path: Path) -> None:
    case, weights, output, _ = converted
    loaded = _load_without_plugin(output, "remote", tmp_path)
    assert loaded["class"] == "CodeLlamaForCausalLM" and loaded["model_type"] == "codellama"
    for tokens, logits in zip(PROMPTS, loaded["logits"], strict=True):
        assert (torch.tensor(logits) - reference_logits(weights, case.spec, tokens)).abs().max() <= 1e-4


# Runs the real CLI, but parks the process forever at a chosen point so the test can kill it there.
KILLABLE = """
import sys, time
from transformers_codellama.conversion import convert, writer
from transformers_codellama.conversion.convert_codellama_weights_to_hf import main
marker, point = sys.argv[1], sys.argv[2]
def park(*args, **kwargs):
    open(marker, "w").close()
    time.sleep(600)
if point == "weights":
    write, count = writer.ShardWriter.write, []
    def counting(self, name, tensor):
        write(self, name, tensor)
        count.append(name)
        if len(count) == 4:
            park()
    writer.ShardWriter.write = counting
else:  # the metadata: written in process by convert(), by a child process on the parallel path
    from transformers_codellama.conversion import metadata_process
    def parked_wait(self):
        open(marker + ".child", "w").write(str(self.pid))
        park()
    convert.model_card = park
    metadata_process.MetadataProcess.wait = parked_wait
sys.exit(main(sys.argv[3:]))
"""


def _exits(pid: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:  # dead, not yet reaped by its new parent
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("point", ["weights", "metadata"])
def test_killed_conversion_leaves_nothing_and_rerun_succeeds(tmp_path: Path, point: str) -> None:
    spec = TinyCodeLlama(dim=64, n_heads=4, n_shards=2)
    write_meta_checkpoint(tmp_path / "CodeLlama-7b", spec)
    output, marker = tmp_path / "out" / "CodeLlama-7b-hf", tmp_path / "marker"
    args = ["--input-dir", str(tmp_path / "CodeLlama-7b"), "--output-dir", str(output), "--max-shard-size", "100KB"]
    process = subprocess.Popen([sys.executable, "-c", KILLABLE, str(marker), point, *args], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), process.communicate()[1]
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    child = tmp_path / "marker.child"
    if point == "metadata":  # the process writing the metadata dies with its parent: no orphan keeps writing
        assert child.exists() and _exits(int(child.read_text()), within=60)
    assert not output.exists()
    leftovers = list(output.parent.iterdir())
    assert [p.name for p in leftovers] == [f".CodeLlama-7b-hf.partial-{process.pid}"]  # hidden, clearly partial
    assert any(leftovers[0].glob("*.safetensors"))
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in output.parent.iterdir()] == ["CodeLlama-7b-hf"]
    assert (output / "config.json").is_file() and (output / "model.safetensors.index.json").is_file()


def test_verify_fails_on_a_wrong_conversion(tmp_path: Path) -> None:
    # Drop the rotary permutation: the weights still load, but the logits differ from Meta's.
    spec = TinyCodeLlama(dim=64, n_heads=4, n_shards=1)
    write_meta_checkpoint(tmp_path / "CodeLlama-7b", spec)
    broken = (
        "import sys\nfrom transformers_codellama.conversion import weights\n"
        "weights.rotary_row_order = lambda rows, heads: list(range(rows))\n"
    )
    broken += "from transformers_codellama.conversion.convert_codellama_weights_to_hf import main\nsys.exit(main())\n"
    result = subprocess.run([sys.executable, "-c", broken, "--input-dir", str(tmp_path / "CodeLlama-7b"),
                             "--output-dir", str(tmp_path / "out"), "--verify"],
                            capture_output=True, text=True, env=ENV, timeout=300)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "differ from Meta's forward" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
