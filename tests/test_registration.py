"""Registration: Auto classes resolve to the plugin's classes, twice is harmless, built-ins are untouched."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from real_data import CODELLAMA_MODEL, LLAMA2_MODEL
from tiny_checkpoints import make_checkpoint
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    pipeline,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_MAPPING
from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING

import transformers_codellama
from transformers_codellama import (
    CodeLlamaConfig,
    CodeLlamaForCausalLM,
    CodeLlamaModel,
    CodeLlamaTextGenerationPipeline,
    CodeLlamaTokenizerFast,
)


def test_auto_mappings_resolve_to_plugin_classes():
    assert CONFIG_MAPPING["codellama"] is CodeLlamaConfig
    assert MODEL_MAPPING[CodeLlamaConfig] is CodeLlamaModel
    assert MODEL_FOR_CAUSAL_LM_MAPPING[CodeLlamaConfig] is CodeLlamaForCausalLM
    assert TOKENIZER_MAPPING[CodeLlamaConfig] is CodeLlamaTokenizerFast
    assert type(AutoConfig.for_model("codellama")) is CodeLlamaConfig
    assert type(AutoModelForCausalLM.from_config(AutoConfig.for_model("codellama", **_TINY))) is CodeLlamaForCausalLM
    assert type(AutoModel.from_config(AutoConfig.for_model("codellama", **_TINY))) is CodeLlamaModel


_TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 64}


def test_register_twice_is_harmless():
    before = _registry_snapshot()
    transformers_codellama.register()
    transformers_codellama.register()
    assert _registry_snapshot() == before


def _registry_snapshot():
    return (
        dict(CONFIG_MAPPING._extra_content),
        dict(MODEL_MAPPING._extra_content),
        dict(MODEL_FOR_CAUSAL_LM_MAPPING._extra_content),
        dict(TOKENIZER_MAPPING._extra_content),
    )


def test_builtin_llama_still_resolves_to_llama():
    assert CONFIG_MAPPING["llama"] is LlamaConfig
    assert MODEL_FOR_CAUSAL_LM_MAPPING[LlamaConfig] is LlamaForCausalLM
    assert type(AutoModelForCausalLM.from_config(LlamaConfig(**_TINY))) is LlamaForCausalLM


@pytest.mark.parametrize("class_name", ["CodeLlamaTokenizer", "CodeLlamaTokenizerFast"])
@pytest.mark.parametrize("model_type", ["codellama", "llama"])
def test_tokenizer_config_names_resolve_to_ours(tmp_path, class_name, model_type):
    """Hub checkpoints name `CodeLlamaTokenizer(Fast)` (transformers has a built-in of that name): ours wins."""
    CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL)).save_pretrained(tmp_path)
    path = tmp_path / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = class_name
    config.pop("auto_map", None)
    path.write_text(json.dumps(config))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, **_TINY}))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert type(tokenizer) is CodeLlamaTokenizerFast
    assert tokenizer("<FILL_ME>").input_ids[-1] == tokenizer.middle_id


def test_pipeline_for_codellama_is_ours_and_stock_for_llama(tmp_path):
    codellama = make_checkpoint(tmp_path / "codellama")
    assert type(pipeline("text-generation", model=str(codellama))) is CodeLlamaTextGenerationPipeline
    llama = LlamaForCausalLM(LlamaConfig(**_TINY))
    llama.save_pretrained(tmp_path / "llama")
    tokenizer = AutoTokenizer.from_pretrained(codellama)  # ours: also a Code Llama pipeline on a llama model
    assert type(pipeline("text-generation", model=llama, tokenizer=tokenizer)) is CodeLlamaTextGenerationPipeline


# Loads a tiny Llama checkpoint and a GPT-2-style one through every entry point and prints what it got; run with and
# without the plugin imported first, the two transcripts must be identical.
_BUILTIN_PROBE = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "plugin":
        import transformers_codellama
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, pipeline
    from transformers.pipelines import PIPELINE_REGISTRY
    out = {}
    for name in sys.argv[2:]:
        out[name] = {
            "config": type(AutoConfig.from_pretrained(name)).__qualname__,
            "model": type(AutoModel.from_pretrained(name)).__qualname__,
            "tokenizer": type(AutoTokenizer.from_pretrained(name)).__qualname__,
        }
        generator = pipeline("text-generation", model=name)
        out[name]["pipeline"] = type(generator).__module__ + "." + type(generator).__qualname__
        out[name]["generated"] = generator(["def f(x):", "a <FILL_ME> b"], do_sample=False, max_new_tokens=4)
        out[name]["ids"] = generator.tokenizer("def f(x):\\n  <FILL_ME> return").input_ids
    out["tasks"] = sorted(PIPELINE_REGISTRY.get_supported_tasks())
    print(json.dumps(out, sort_keys=True))
    """
)


def test_builtin_models_behave_as_without_the_plugin(tmp_path):
    from transformers import LlamaTokenizer

    llama_dir = tmp_path / "llama"
    LlamaForCausalLM(LlamaConfig(**{**_TINY, "vocab_size": 32000})).save_pretrained(llama_dir)
    LlamaTokenizer(vocab_file=str(LLAMA2_MODEL)).save_pretrained(llama_dir)
    runs = [
        subprocess.run(
            [sys.executable, "-c", _BUILTIN_PROBE, mode, str(llama_dir)],
            capture_output=True,
            text=True,
            check=True,
            env=_offline_env(),
        ).stdout
        for mode in ("plugin", "plain")
    ]
    with_plugin, without = (json.loads(run.strip().splitlines()[-1]) for run in runs)
    assert with_plugin == without
    assert with_plugin[str(llama_dir)]["pipeline"] == "transformers.pipelines.text_generation.TextGenerationPipeline"


def _offline_env():
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"}
