"""CodeLlamaForCausalLM: parity with stock Llama over a table of tiny configurations, Auto classes, save/load,
generation stops, and Llama's device-placement machinery."""

from __future__ import annotations

import pytest
import torch
from real_data import LLAMA2_MODEL
from tiny_checkpoints import (
    CODELLAMA_MODEL,
    MetaReference,
    chain,
    make_checkpoint,
    random_model,
    tiny_config,
)
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaModel,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES
from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

from transformers_codellama import CodeLlamaConfig, CodeLlamaForCausalLM, CodeLlamaModel, CodeLlamaTokenizerFast
from transformers_codellama.stopping import generation_config_for, stop_token_ids

CONFIGS = {
    "mha-32016": {"vocab_size": 32016, "num_key_value_heads": 4},
    "gqa-32016": {"vocab_size": 32016, "num_key_value_heads": 2},
    "mha-32000": {"vocab_size": 32000, "num_key_value_heads": 4, "supports_infilling": False, "variant": "python"},
    "gqa-32000": {"vocab_size": 32000, "num_key_value_heads": 1, "supports_infilling": False},
}
CODE_LLAMA_FIELDS = ("variant", "supports_infilling")


def stock_twin(model: CodeLlamaForCausalLM) -> LlamaForCausalLM:
    """Stock Llama with the same configuration values and the very same weights."""
    fields = {k: v for k, v in model.config.to_dict().items() if k in LlamaConfig.__dataclass_fields__}
    twin = LlamaForCausalLM(LlamaConfig(**fields)).eval()
    twin.load_state_dict(model.state_dict(), strict=True)
    return twin


def check_against_llama(config: CodeLlamaConfig, directory) -> None:
    """The shared checker: logits and greedy generations equal stock Llama's; Auto classes and round trips."""
    model = random_model(config, seed=7)
    twin = stock_twin(model)
    ids = torch.randint(3, config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # a left-padded row
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
        assert torch.equal(logits, twin(ids, attention_mask=mask).logits)
    generate = {"max_new_tokens": 6, "do_sample": False, "eos_token_id": 2, "pad_token_id": 2}
    generated = model.generate(ids, attention_mask=mask, **generate)
    assert torch.equal(generated, twin.generate(ids, attention_mask=mask, **generate))

    model.save_pretrained(directory)
    assert type(AutoConfig.from_pretrained(directory)) is CodeLlamaConfig
    loaded = AutoModelForCausalLM.from_pretrained(directory)
    assert type(loaded) is CodeLlamaForCausalLM
    assert {f: getattr(loaded.config, f) for f in CODE_LLAMA_FIELDS} == {
        f: getattr(config, f) for f in CODE_LLAMA_FIELDS
    }
    with torch.no_grad():
        assert torch.equal(loaded(ids, attention_mask=mask).logits, logits)
    base = AutoModel.from_pretrained(directory)
    assert type(base) is CodeLlamaModel
    with torch.no_grad():
        assert torch.equal(
            base(ids, attention_mask=mask).last_hidden_state, model.model(ids, attention_mask=mask).last_hidden_state
        )


@pytest.mark.parametrize("fields", CONFIGS.values(), ids=CONFIGS.keys())
def test_matches_stock_llama(fields, tmp_path):
    check_against_llama(tiny_config(**fields), tmp_path)


def test_model_type_is_new():
    assert CodeLlamaConfig.model_type not in CONFIG_MAPPING_NAMES
    assert CodeLlamaConfig.model_type not in MODEL_MAPPING_NAMES
    assert CodeLlamaConfig.model_type not in TOKENIZER_MAPPING_NAMES


def test_classes_are_llama_subclasses_with_llama_plans():
    assert issubclass(CodeLlamaForCausalLM, LlamaForCausalLM) and issubclass(CodeLlamaModel, LlamaModel)
    assert CodeLlamaForCausalLM.config_class is CodeLlamaConfig and CodeLlamaModel.config_class is CodeLlamaConfig
    assert CodeLlamaForCausalLM._tp_plan == LlamaForCausalLM._tp_plan
    assert CodeLlamaForCausalLM._pp_plan == LlamaForCausalLM._pp_plan
    assert CodeLlamaConfig.base_model_tp_plan == LlamaConfig.base_model_tp_plan
    model = random_model(tiny_config())
    assert model._no_split_modules == {"LlamaDecoderLayer"}
    assert model.config.tie_word_embeddings is False
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()


def test_generation_config_stops_on_eot_for_infilling_checkpoints():
    codellama = CodeLlamaTokenizerFast(vocab_file=str(CODELLAMA_MODEL))
    llama2 = CodeLlamaTokenizerFast(vocab_file=str(LLAMA2_MODEL))
    eot = MetaReference().eot
    assert generation_config_for(tiny_config(), codellama).eos_token_id == [2, eot]
    assert generation_config_for(tiny_config(supports_infilling=False), codellama).eos_token_id == 2
    assert generation_config_for(tiny_config(vocab_size=32000, supports_infilling=False), llama2).eos_token_id == 2
    assert stop_token_ids(tiny_config(), llama2) == [2]


@pytest.fixture(scope="module")
def eot_checkpoint(tmp_path_factory):
    """`▁<MID>` -> a -> b -> c -> `▁<EOT>` -> d: greedy generation hits EOT after exactly three tokens."""
    ref = MetaReference()
    a, b, c, d = (ref.sp.piece_to_id(piece) for piece in ("▁return", "▁x", "▁+", "▁y"))
    return make_checkpoint(tmp_path_factory.mktemp("eot"), transitions=chain(ref.mid, a, b, c, ref.eot, d)), [a, b, c]


def test_generate_stops_on_eot(eot_checkpoint):
    directory, middle = eot_checkpoint
    ref = MetaReference()
    model = AutoModelForCausalLM.from_pretrained(directory)
    prompt = torch.tensor([ref.infilling_ids("def f(x):\n    ", "\n")])
    out = model.generate(prompt, max_new_tokens=10, do_sample=False)[0, prompt.shape[1] :].tolist()
    assert out == [*middle, ref.eot]


def test_generate_stops_on_eot_in_a_batch(eot_checkpoint):
    directory, middle = eot_checkpoint
    ref = MetaReference()
    model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.pad_token, tokenizer.padding_side = tokenizer.eos_token, "left"
    prompts = ["def f(x):\n    <FILL_ME>\n", "<FILL_ME>", "import os\nimport sys\n<FILL_ME>\nprint(1)"]
    batch = tokenizer(prompts, padding=True, return_tensors="pt")
    assert batch.input_ids[:, -1].tolist() == [ref.mid] * 3
    out = model.generate(**batch, max_new_tokens=10, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    for row in out[:, batch.input_ids.shape[1] :].tolist():
        assert row == [*middle, ref.eot]  # all rows stop at the same step, so no padding follows
        assert tokenizer.decode_infill(row) == ref.decode_infilling(middle)


def test_device_map_auto_with_disk_offload(tmp_path):
    """`device_map="auto"` with a `max_memory` too small for the model: layers split between CPU and disk."""
    directory = make_checkpoint(tmp_path / "model", vocab_file=LLAMA2_MODEL, seed=3)
    reference = AutoModelForCausalLM.from_pretrained(directory)
    layer_bytes = sum(p.numel() * p.element_size() for p in reference.model.layers[0].parameters())
    embed_bytes = reference.model.embed_tokens.weight.numel() * 4
    budget = embed_bytes * 2 + layer_bytes // 2  # embeddings and head fit, the decoder layers do not
    offloaded = AutoModelForCausalLM.from_pretrained(
        directory, device_map="auto", max_memory={"cpu": budget}, offload_folder=str(tmp_path / "offload")
    )
    placements = offloaded.hf_device_map
    assert "disk" in placements.values() and "cpu" in placements.values(), placements
    # `_no_split_modules`: a decoder layer is placed whole, never split between devices.
    assert all(not key.startswith("model.layers.") or key.count(".") == 2 for key in placements), placements
    ids = torch.tensor([[1, 822, 285, 29898, 29916, 1125]])
    expected = reference.generate(ids, max_new_tokens=5, do_sample=False)
    assert torch.equal(offloaded.generate(ids, max_new_tokens=5, do_sample=False), expected)
