"""`--format llama` as stock engines (vLLM, TGI, SGLang) load it: stock transformers, the plugin not importable.

Everything below runs in a fresh interpreter whose `import transformers_codellama` fails, against SentencePiece
itself on real code (2 KB cuts of the standard library) and the chat format as Meta defines it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece
from meta_checkpoints import TinyCodeLlama, write_meta_checkpoint
from real_data import CODELLAMA_MODEL, stdlib_sources

MODULE = "transformers_codellama.conversion.convert_codellama_weights_to_hf"
ENV = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}

STOCK = r"""
import json, random, sys
try:
    import transformers_codellama  # noqa: F401
    plugin_importable = True
except ImportError:
    plugin_importable = False
import sentencepiece, torch
from transformers import AutoModelForCausalLM, AutoTokenizer

path, reference_model, cuts_file = sys.argv[1], sys.argv[2], sys.argv[3]
sp = sentencepiece.SentencePieceProcessor(model_file=reference_model)
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
with open(cuts_file, encoding="utf-8") as file:
    cuts = json.load(file)
rng = random.Random(0)
plain = [tokenizer(cut)["input_ids"] == [sp.bos_id(), *sp.encode(cut)] for cut in cuts]
decoded = [tokenizer.decode(tokenizer(cut)["input_ids"], skip_special_tokens=True) == cut for cut in cuts]
fim = []
for cut in cuts[:50]:
    point = rng.randrange(len(cut))
    prompt = f"<PRE> {cut[:point]} <SUF>{cut[point:]} <MID>"
    fim.append(tokenizer(prompt)["input_ids"] == [sp.bos_id(), *sp.encode(prompt)])

conversation = [
    {"role": "system", "content": "Answer with code only."},
    {"role": "user", "content": "Reverse a string in Python."},
    {"role": "assistant", "content": "s[::-1]"},
    {"role": "user", "content": "And a list, in place?"},
]
rendered = tokenizer.apply_chat_template(conversation, tokenize=False)
chat_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]

eot = sp.piece_to_id("▁<EOT>")
def favour(token):  # makes `token` the greedy choice at every step
    return model.lm_head.register_forward_hook(lambda module, args, out: out.index_fill(-1, torch.tensor([token]), 1e4))
prompt = torch.tensor([[sp.bos_id(), *sp.encode("def f(x):")]])
hook = favour(eot)
stopped = model.generate(prompt, max_new_tokens=6, do_sample=False)[0, prompt.shape[1]:].tolist()
hook.remove()
hook = favour(sp.piece_to_id("▁return"))
unstopped = model.generate(prompt, max_new_tokens=6, do_sample=False)[0, prompt.shape[1]:].tolist()
hook.remove()

print(json.dumps({
    "plugin_importable": plugin_importable,
    "tokenizer_class": type(tokenizer).__name__,
    "model_class": type(model).__name__,
    "length": len(tokenizer),
    "vocab_size": model.config.vocab_size,
    "plain_matches": sum(plain), "decode_matches": sum(decoded), "starting_with_space": sum(c[0] == " " for c in cuts),
    "fim_matches": sum(fim), "fim_cases": len(fim),
    "chat_ids": chat_ids, "eos_token_id": model.generation_config.eos_token_id, "eot": eot,
    "stopped": stopped, "unstopped": unstopped,
}))
"""


def code_cuts_2kb(count: int = 150, seed: int = 0) -> list[str]:
    """2 KB cuts of real code starting anywhere: many start with a space or inside an indent."""
    rng = random.Random(seed)
    texts = [text for text in stdlib_sources() if len(text) > 4096]
    starts = [(text, rng.randrange(len(text) - 2048)) for text in (rng.choice(texts) for _ in range(count))]
    return [text[start : start + 2048] for text, start in starts]


def run_stock(checkpoint: Path, scratch: Path) -> dict:
    """Run STOCK in an interpreter where `transformers_codellama` cannot be imported (as in a serving engine)."""
    blocker = scratch / "blocker" / "transformers_codellama"
    blocker.mkdir(parents=True, exist_ok=True)
    (blocker / "__init__.py").write_text("raise ImportError('no plugin here: stock engines load stock classes')\n")
    cuts = scratch / "cuts.json"
    cuts.write_text(json.dumps(code_cuts_2kb()), encoding="utf-8")
    env = {**ENV, "PYTHONPATH": str(blocker.parent), "HF_HOME": str(scratch / "hf")}
    result = subprocess.run([sys.executable, "-c", STOCK, str(checkpoint), str(CODELLAMA_MODEL), str(cuts)],
                            capture_output=True, text=True, env=env, cwd=scratch, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def stock(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("stock")
    spec = TinyCodeLlama(dim=64, n_heads=4, n_shards=2, tokenizer=CODELLAMA_MODEL, vocab_size=32016)
    write_meta_checkpoint(root / "CodeLlama-7b-Instruct", spec)
    output = root / "CodeLlama-7b-Instruct-llama"
    args = ["--input-dir", root / "CodeLlama-7b-Instruct", "--output-dir", output, "--format", "llama"]
    result = subprocess.run([sys.executable, "-m", MODULE, *map(str, args)],
                            capture_output=True, text=True, env=ENV, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return output, run_stock(output, root)


def test_stock_engines_get_no_plugin_code(stock) -> None:
    output, found = stock
    assert not found["plugin_importable"]
    assert found["model_class"] == "LlamaForCausalLM"
    assert not list(output.glob("*.py"))
    for name in ("config.json", "tokenizer_config.json"):
        assert "auto_map" not in json.loads((output / name).read_text())
    assert json.loads((output / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_stock_tokenizer_ids_are_sentencepiece_ids_on_real_code(stock) -> None:
    _, found = stock
    assert found["starting_with_space"] > 0  # the cuts the stock Code Llama tokenizer gets wrong are present
    assert found["plain_matches"] == 150 and found["decode_matches"] == 150


def test_stock_tokenizer_length_is_the_model_vocabulary(stock) -> None:
    _, found = stock
    assert found["length"] == found["vocab_size"] == 32016


def test_fim_template_is_tokenized_as_sentencepiece_tokenizes_it(stock) -> None:
    _, found = stock
    assert found["fim_matches"] == found["fim_cases"] == 50


def test_instruct_chat_template_gives_meta_ids_through_the_stock_tokenizer(stock) -> None:
    # Meta's Llama 2 chat format: each finished exchange BOS + enc("[INST] user [/INST] answer ") + EOS, the system
    # message merged into the first user message, then BOS + enc("[INST] user [/INST]").
    _, found = stock
    sp = sentencepiece.SentencePieceProcessor(model_file=str(CODELLAMA_MODEL))
    first = "<<SYS>>\nAnswer with code only.\n<</SYS>>\n\nReverse a string in Python."
    expected = [1, *sp.encode(f"[INST] {first} [/INST] s[::-1] "), 2]
    expected += [1, *sp.encode("[INST] And a list, in place? [/INST]")]
    assert found["chat_ids"] == expected


def test_generation_stops_on_eot_through_generation_config(stock) -> None:
    _, found = stock
    assert found["eot"] == 32010 and set(found["eos_token_id"]) == {2, found["eot"]}
    assert found["stopped"] == [found["eot"]]  # stopped at once, no explicit eos_token_id passed
    assert len(found["unstopped"]) == 6
