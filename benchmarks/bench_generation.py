"""Greedy `generate` speed of `CodeLlamaForCausalLM` against stock `LlamaForCausalLM` with the same weights,
measured side by side in one run (medians of interleaved repeats).

    python benchmarks/bench_generation.py [--new-tokens 32] [--repeats 15] [--threads 1]

Target: Code Llama tokens/s >= 0.98x stock Llama's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODEL_SIZES, alternating, generation_arguments, generation_results, save

from transformers_codellama import CodeLlamaConfig, CodeLlamaForCausalLM


def main() -> None:
    args = generation_arguments(__doc__)

    torch.manual_seed(0)
    codellama = CodeLlamaForCausalLM(CodeLlamaConfig(**MODEL_SIZES)).eval()
    fields = {k: v for k, v in codellama.config.to_dict().items() if k in LlamaConfig.__dataclass_fields__}
    llama = LlamaForCausalLM(LlamaConfig(**fields)).eval()
    llama.load_state_dict(codellama.state_dict(), strict=True)
    prompt = torch.randint(3, 32000, (1, 32), generator=torch.Generator().manual_seed(1))
    options = {
        "max_new_tokens": args.new_tokens,
        "min_new_tokens": args.new_tokens,
        "do_sample": False,
        "pad_token_id": 2,
    }

    outputs = {name: model.generate(prompt, **options) for name, model in (("codellama", codellama), ("llama", llama))}
    assert torch.equal(outputs["codellama"], outputs["llama"]), "the two models must generate the same tokens"

    with torch.inference_mode():
        times = alternating(
            {
                "codellama": lambda: codellama.generate(prompt, **options),
                "llama": lambda: llama.generate(prompt, **options),
            },
            args.repeats,
        )
    tokens_per_s = {name: args.new_tokens / seconds for name, seconds in times.items()}
    ratio = tokens_per_s["codellama"] / tokens_per_s["llama"]
    results = generation_results(
        args, times, tokens_per_s=tokens_per_s, ratio_codellama_over_llama=ratio, target=">= 0.98"
    )
    path = save("generation", results)
    for name, rate in tokens_per_s.items():
        print(f"{name:>10}: {rate:8.1f} tokens/s (median {times[name] * 1e3:.1f} ms per call)")
    print(f"ratio codellama/llama: {ratio:.3f} (target >= 0.98); written to {path}")


if __name__ == "__main__":
    main()
