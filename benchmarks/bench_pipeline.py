"""End-to-end infilling through `pipeline("text-generation")` against the same work done by hand (tokenizer +
`model.generate` + `decode_infill`), measured side by side in one run (medians of interleaved repeats).

    python benchmarks/bench_pipeline.py [--new-tokens 32] [--repeats 15] [--threads 1]

Target: pipeline overhead <= 5% over the hand-written loop.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import torch
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODEL_SIZES, SHARED_DATA, alternating, generation_arguments, generation_results, save

from transformers_codellama import CodeLlamaConfig, CodeLlamaForCausalLM, CodeLlamaTokenizerFast
from transformers_codellama.stopping import generation_config_for

PROMPT = 'def remove_non_ascii(s: str) -> str:\n    """ <FILL_ME>\n    return result\n'


def main() -> None:
    args = generation_arguments(__doc__)
    logging.getLogger("transformers").setLevel(logging.ERROR)

    tokenizer = CodeLlamaTokenizerFast(vocab_file=str(SHARED_DATA / "codellama.model"))
    torch.manual_seed(0)
    model = CodeLlamaForCausalLM(CodeLlamaConfig(**MODEL_SIZES)).eval()
    model.generation_config = generation_config_for(model.config, tokenizer)
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        generator = pipeline("text-generation", model=directory)
    model, tokenizer = generator.model, generator.tokenizer
    options = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, "do_sample": False}
    prefix, suffix = PROMPT.split("<FILL_ME>")

    def by_hand() -> str:
        inputs = tokenizer(PROMPT, return_tensors="pt")
        stops = [tokenizer.eot_id, tokenizer.eos_token_id]
        output = model.generate(**inputs, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id, **options)
        return prefix + tokenizer.decode_infill(output[0, inputs.input_ids.shape[1] :].tolist()) + suffix

    def through_pipeline() -> str:
        return generator(PROMPT, **options)[0]["generated_text"]

    assert by_hand() == through_pipeline(), "the pipeline and the hand-written loop must agree"
    with torch.inference_mode():
        times = alternating({"by_hand": by_hand, "pipeline": through_pipeline}, args.repeats)
    overhead = times["pipeline"] / times["by_hand"] - 1
    results = generation_results(args, times, pipeline_overhead=overhead, target="<= 0.05")
    path = save("pipeline", results)
    for name, seconds in times.items():
        print(f"{name:>10}: {seconds * 1e3:8.1f} ms per infilling call (median)")
    print(f"pipeline overhead: {overhead * 100:+.1f}% (target <= 5%); written to {path}")


if __name__ == "__main__":
    main()
