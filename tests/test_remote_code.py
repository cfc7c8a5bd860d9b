"""Sharing on the Hub: a checkpoint saved by `save_pretrained` loads (a) with the plugin, no `trust_remote_code`,
and (b) where the plugin cannot be imported, with `trust_remote_code=True`, from the code saved beside it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from real_data import CODELLAMA_MODEL
from tiny_checkpoints import make_checkpoint, random_model, tiny_config
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from transformers_codellama import (
    CodeLlamaConfig,
    CodeLlamaForCausalLM,
    CodeLlamaModel,
    CodeLlamaTokenizerFast,
    save_remote_code,
)
from transformers_codellama.remote_code import code_files

PROMPT = "def f(x):\n    <FILL_ME>\n    return y\n"

# Runs where `transformers_codellama` cannot be imported: a meta-path finder refuses it (and the test checks that
# it does), so everything must come from the checkpoint's own code files.
_REMOTE_PROBE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "transformers_codellama":
                raise ModuleNotFoundError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Blocker())
    try:
        import transformers_codellama
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("transformers_codellama was importable")

    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    directory, prompt = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:  # without trust_remote_code, loading must refuse
        try:
            AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=False)
        except ValueError as error:
            print(json.dumps({"refused": str(error).splitlines()[0]}))
        raise SystemExit(0)
    config = AutoConfig.from_pretrained(directory, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(directory, trust_remote_code=True)
    base = AutoModel.from_pretrained(directory, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=True)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    generated = model.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:].tolist()
    out = {
        "classes": [type(o).__module__.split(".")[0] + ":" + type(o).__name__ for o in (config, model, base, tokenizer)],
        "plugin_loaded": any(name.startswith("transformers_codellama") for name in sys.modules),
        "ids": ids[0].tolist(),
        "logits": model(ids).logits[0, -1, :8].tolist(),
        "generated": generated,
        "middle": tokenizer.decode_infill(generated),
        "eos": model.generation_config.eos_token_id,
    }
    print(json.dumps(out))
    """
)


def run_without_plugin(directory, tmp_path, *extra):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "TRANSFORMERS_VERBOSITY": "error",
        "TOKENIZERS_PARALLELISM": "false",
    }
    result = subprocess.run(
        [sys.executable, "-c", _REMOTE_PROBE, str(directory), PROMPT, *extra],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def expected_with_plugin(directory):
    model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    generated = model.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1] :].tolist()
    return ids, model, generated, tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("saved"), seed=21)


def test_save_pretrained_writes_code_and_auto_map(checkpoint):
    names = {path.name for path in code_files()}
    assert names <= {path.name for path in checkpoint.iterdir()}
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_code_llama.CodeLlamaConfig",
        "AutoModel": "modeling_code_llama.CodeLlamaModel",
        "AutoModelForCausalLM": "modeling_code_llama.CodeLlamaForCausalLM",
    }
    tokenizer_config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    assert tokenizer_config["auto_map"]["AutoTokenizer"][1] == "tokenization_code_llama_fast.CodeLlamaTokenizerFast"


def test_loads_with_plugin_without_trust_remote_code(checkpoint):
    assert type(AutoConfig.from_pretrained(checkpoint)) is CodeLlamaConfig
    assert type(AutoModelForCausalLM.from_pretrained(checkpoint)) is CodeLlamaForCausalLM
    assert type(AutoModel.from_pretrained(checkpoint)) is CodeLlamaModel
    assert type(AutoTokenizer.from_pretrained(checkpoint)) is CodeLlamaTokenizerFast


def test_loads_without_plugin_with_trust_remote_code(checkpoint, tmp_path):
    ids, model, generated, tokenizer = expected_with_plugin(checkpoint)
    remote = run_without_plugin(checkpoint, tmp_path)
    assert remote["classes"] == [
        "transformers_modules:CodeLlamaConfig",
        "transformers_modules:CodeLlamaForCausalLM",
        "transformers_modules:CodeLlamaModel",
        "transformers_modules:CodeLlamaTokenizerFast",
    ]
    assert not remote["plugin_loaded"]
    assert remote["ids"] == ids[0].tolist()
    with torch.no_grad():
        assert remote["logits"] == model(ids).logits[0, -1, :8].tolist()
    assert remote["generated"] == generated
    assert remote["middle"] == tokenizer.decode_infill(generated)
    assert remote["eos"] == model.generation_config.eos_token_id


def test_without_plugin_refuses_without_trust_remote_code(checkpoint, tmp_path):
    assert "contains custom code" in run_without_plugin(checkpoint, tmp_path, "refuse")["refused"]


def test_save_remote_code_on_a_folder_written_by_hand(tmp_path):
    """The converter writes config/weights itself; `save_remote_code` then makes the folder self-contained."""
    model = random_model(tiny_config(num_key_value_heads=2), seed=4)
    directory = tmp_path / "converted"
    model.config.save_pretrained(directory)
    for name in ("auto_map",):
        data = json.loads((directory / "config.json").read_text())
        data.pop(name, None)
        (directory / "config.json").write_text(json.dumps(data))
    for path in directory.glob("*.py"):
        path.unlink()
    from safetensors.torch import save_file

    save_file(model.state_dict(), directory / "model.safetensors", metadata={"format": "pt"})
    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    tokenizer.save_pretrained(directory)
    for path in directory.glob("*.py"):
        path.unlink()
    copied = save_remote_code(directory)
    assert {path.name for path in copied} == {path.name for path in code_files()}
    remote = run_without_plugin(directory, tmp_path)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    assert remote["ids"] == ids[0].tolist()
    with torch.no_grad():
        assert remote["logits"] == model(ids).logits[0, -1, :8].tolist()
