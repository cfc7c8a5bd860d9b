"""`pipeline("text-generation")` on Code Llama checkpoints against Meta's decoding, written independently
(SentencePiece layouts + a greedy loop over the model's logits, see `tiny_checkpoints`)."""

from __future__ import annotations

import pytest
from real_data import LLAMA2_MODEL
from tiny_checkpoints import MetaReference, chain, greedy, make_checkpoint
from transformers import AutoModelForCausalLM, pipeline

from transformers_codellama import CodeLlamaTextGenerationPipeline

GREEDY = {"do_sample": False, "max_new_tokens": 8}
PROMPTS = ["def fibonacci(n):", "import os\n\nclass  Walker:\n", " x = 1"]
INFILLS = [
    ('def remove_non_ascii(s: str) -> str:\n    """ ', "\n    return result\n"),
    ("", "\n"),
    ("for i in range(10):\n", "    print(i)"),
]


@pytest.fixture(scope="module")
def ref():
    return MetaReference()


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    directory = make_checkpoint(tmp_path_factory.mktemp("random"), seed=11)
    return directory, AutoModelForCausalLM.from_pretrained(directory)


@pytest.fixture(scope="module")
def generator(random_checkpoint):
    return pipeline("text-generation", model=str(random_checkpoint[0]))


def test_pipeline_class(generator):
    assert type(generator) is CodeLlamaTextGenerationPipeline


def test_completion_matches_meta(generator, random_checkpoint, ref):
    model = random_checkpoint[1]
    for prompt in PROMPTS:
        ids = ref.completion_ids(prompt)
        expected = greedy(model, ids, stop=[ref.eos], max_new_tokens=8)
        assert generator(prompt, return_full_text=False, **GREEDY)[0]["generated_text"] == ref.decode(expected)
        # The full text is the prompt followed by what was generated, spacing included.
        full = ref.decode(ids[1:] + expected)
        assert generator(prompt, **GREEDY)[0]["generated_text"] == prompt + full[len(ref.decode(ids[1:])) :]


@pytest.mark.parametrize("suffix_first", [False, True])
def test_infilling_matches_meta(generator, random_checkpoint, ref, suffix_first):
    model = random_checkpoint[1]
    for prefix, suffix in INFILLS:
        ids = ref.infilling_ids(prefix, suffix, suffix_first=suffix_first)
        middle = ref.decode_infilling(greedy(model, ids, stop=[ref.eot, ref.eos], max_new_tokens=8))
        prompt = prefix + "<FILL_ME>" + suffix
        call = {"suffix_first": suffix_first, **GREEDY}
        assert generator(prompt, return_full_text=False, **call)[0]["generated_text"] == middle
        assert generator(prompt, **call)[0]["generated_text"] == prefix + middle + suffix


def test_golden_layout_reaches_the_model(generator, ref):
    prefix, suffix = INFILLS[0]
    golden = "1 32007 822 3349 29918 5464 29918 294 18869 29898 29879 29901 851 29897 1599 851 29901 13 1678 9995 29871 32008 13 1678 736 1121 13 32009"
    assert generator.preprocess(prefix + "<FILL_ME>" + suffix)["input_ids"][0].tolist() == [
        int(t) for t in golden.split()
    ]


def test_lists_and_batches(generator, random_checkpoint, ref):
    model = random_checkpoint[1]
    prompts = [prefix + "<FILL_ME>" + suffix for prefix, suffix in INFILLS]
    expected = [
        [
            {
                "generated_text": ref.decode_infilling(
                    greedy(model, ref.infilling_ids(p, s), stop=[ref.eot, ref.eos], max_new_tokens=8)
                )
            }
        ]
        for p, s in INFILLS
    ]
    assert generator(prompts, return_full_text=False, **GREEDY) == expected
    assert generator(prompts, return_full_text=False, batch_size=3, **GREEDY) == expected
    completions = generator(PROMPTS, return_full_text=False, batch_size=2, **GREEDY)
    assert completions == [
        [{"generated_text": ref.decode(greedy(model, ref.completion_ids(p), stop=[ref.eos], max_new_tokens=8))}]
        for p in PROMPTS
    ]


@pytest.fixture(scope="module")
def eot_generator(tmp_path_factory, ref):
    """`▁<MID>` -> `▁return` -> `▁x` -> `▁<EOT>` -> `▁y` -> `</s>`; `):` -> `▁pass` -> `▁<EOT>` too."""
    ret, x, y, colon, pass_ = (ref.sp.piece_to_id(p) for p in ("▁return", "▁x", "▁y", "):", "▁pass"))
    transitions = {**chain(ref.mid, ret, x, ref.eot, y, ref.eos), **chain(colon, pass_, ref.eot)}
    directory = make_checkpoint(tmp_path_factory.mktemp("eot"), transitions=transitions)
    return pipeline("text-generation", model=str(directory))


def test_infilling_stops_at_eot(eot_generator):
    prompts = ["def f(x):\n    <FILL_ME>\n", "<FILL_ME>", "a = 1\n<FILL_ME>\nb = 2\n"]
    for batch_size in (1, 3):
        outputs = eot_generator(
            prompts, return_full_text=False, batch_size=batch_size, do_sample=False, max_new_tokens=20
        )
        assert [output[0]["generated_text"] for output in outputs] == [" return x"] * 3
    assert (
        eot_generator(prompts[0], do_sample=False, max_new_tokens=20)[0]["generated_text"]
        == "def f(x):\n     return x\n"
    )


def test_completion_stops_where_meta_stops(eot_generator, ref):
    # Meta's text completion stops on </s> only, so it runs through ▁<EOT> (an ordinary piece when not infilling).
    pass_, y = ref.sp.piece_to_id("▁pass"), ref.sp.piece_to_id("▁y")
    out = eot_generator("def f(x):", return_full_text=False, do_sample=False, max_new_tokens=20)
    assert out[0]["generated_text"] == ref.decode([pass_, ref.eot, y]) == "pass <EOT> y"
    out = eot_generator("def f(x):", do_sample=False, max_new_tokens=20)
    assert out[0]["generated_text"] == "def f(x): pass <EOT> y"


@pytest.fixture(scope="module")
def instruct_checkpoint(tmp_path_factory, ref):
    """An Instruct checkpoint whose answer after `[/INST]` is `▁Hello ▁world </s>`, then more (never reached)."""
    last = ref.sp.encode("[INST] hi [/INST]")[-1]
    hello, world = ref.sp.encode("Hello world")
    directory = make_checkpoint(
        tmp_path_factory.mktemp("instruct"), variant="instruct", transitions=chain(last, hello, world, ref.eos, hello)
    )
    return directory


def test_chat_stops_at_eos(instruct_checkpoint, ref):
    chat = pipeline("text-generation", model=str(instruct_checkpoint))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
    assert chat.preprocess(_as_chat(messages))["input_ids"][0].tolist() == ref.chat_ids(messages)
    out = chat(messages, do_sample=False, max_new_tokens=10)[0]["generated_text"]
    assert out == [*messages, {"role": "assistant", "content": "Hello world"}]
    assert (
        chat(messages, return_full_text=False, do_sample=False, max_new_tokens=10)[0]["generated_text"] == "Hello world"
    )
    batch = chat([messages, messages[1:]], batch_size=2, do_sample=False, max_new_tokens=10)
    assert [turns[0]["generated_text"][-1]["content"] for turns in batch] == ["Hello world"] * 2


def test_chat_matches_meta_on_random_weights(tmp_path, ref):
    directory = make_checkpoint(tmp_path, variant="instruct", seed=5)
    model = AutoModelForCausalLM.from_pretrained(directory)
    messages = [
        {"role": "user", "content": "Write a loop."},
        {"role": "assistant", "content": "for i in x: pass"},
        {"role": "user", "content": "Again."},
    ]
    expected = ref.decode(greedy(model, ref.chat_ids(messages), stop=[ref.eos], max_new_tokens=8))
    out = pipeline("text-generation", model=str(directory))(messages, **GREEDY)
    assert out[0]["generated_text"][-1] == {"role": "assistant", "content": expected}


def _as_chat(messages):
    from transformers.utils.chat_template_utils import Chat

    return Chat(messages)


def test_infilling_refused_before_generating(tmp_path):
    directory = make_checkpoint(tmp_path, vocab_file=LLAMA2_MODEL, variant="python")
    generator = pipeline("text-generation", model=str(directory))
    calls = []
    generator.model.generate = lambda *a, **k: calls.append(1)  # must never be reached
    for prompts in ("def f(<FILL_ME>):", ["def f(x):", "a<FILL_ME>b"]):
        with pytest.raises(ValueError, match=r"cannot fill in the middle .*supports_infilling=False") as error:
            generator(prompts, do_sample=False, max_new_tokens=2)
        assert "\n" not in str(error.value)
    assert calls == []


def test_bad_prompts_fail_clearly(generator):
    with pytest.raises(ValueError, match="exactly one <FILL_ME>"):
        generator("a <FILL_ME> b <FILL_ME> c", do_sample=False, max_new_tokens=2)
    with pytest.raises(ValueError, match="cannot share a batch"):
        generator(["def f(x):", "a<FILL_ME>b"], batch_size=2, do_sample=False, max_new_tokens=2)
    # Mixed lists are fine one prompt at a time: each gets what it gets alone, in its own mode.
    prompts = ["def f(x):", "a<FILL_ME>b"]
    together = generator(prompts, do_sample=False, max_new_tokens=2)
    alone = [generator(prompt, do_sample=False, max_new_tokens=2) for prompt in prompts]
    assert together == alone
    assert together[1][0]["generated_text"].startswith("a") and together[1][0]["generated_text"].endswith("b")
