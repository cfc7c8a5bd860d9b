"""Run by tests/test_tensor_parallel.py, alone or under `torchrun`: loads a converted checkpoint (sharded with
`tp_plan="auto"` when there are several processes), computes logits and runs the pipeline's completion and infilling,
and writes what it saw as JSON (rank 0 only).

    python -m torch.distributed.run --nproc_per_node 2 tests/tensor_parallel_worker.py CHECKPOINT OUT.json
"""

from __future__ import annotations

import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

import transformers_codellama  # noqa: F401  (registers Code Llama with the Auto classes and the pipeline)

PROMPTS = ["def fibonacci(n):\n", "import os\n\nclass Path:\n    def __init__(self, parts):"]
INFILL = 'def remove_non_ascii(s: str) -> str:\n    """ <FILL_ME>\n    return result\n'


def main() -> None:
    checkpoint, out = sys.argv[1], sys.argv[2]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    sharding = {"tp_plan": "auto"} if world > 1 else {}
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32, **sharding)
    q_proj = model.model.layers[0].self_attn.q_proj.weight
    # This process's rows: newer transformers hold a DTensor, older ones the local shard as a plain tensor.
    local = q_proj.to_local() if hasattr(q_proj, "to_local") else q_proj
    with torch.no_grad():
        logits = [model(**tokenizer(text, return_tensors="pt")).logits[0].tolist() for text in PROMPTS]
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    greedy = {"max_new_tokens": 8, "do_sample": False}
    completion = generator(PROMPTS[0], **greedy)[0]["generated_text"]
    infill = generator(INFILL, return_full_text=False, **greedy)[0]["generated_text"]
    if int(os.environ.get("RANK", "0")) == 0:
        found = {"world": world, "q_proj_local_rows": local.shape[0]}
        found |= {"logits": logits, "completion": completion, "infill": infill}
        with open(out, "w", encoding="utf-8") as file:
            json.dump(found, file)


if __name__ == "__main__":
    main()
