"""Meta's Code Llama tokenizer behaviour, restated from REFERENCE.md directly on `sentencepiece` (the test oracle).

Nothing here uses the package: these are Meta's `Tokenizer.encode`, `encode_infilling`, `decode_infilling`,
`infilling_prompt_tokens` and the two chat formats, written from their specification.
"""

from __future__ import annotations

import sentencepiece as spm


class MetaTokenizer:
    def __init__(self, processor: spm.SentencePieceProcessor) -> None:
        self.sp = processor
        self.bos_id, self.eos_id = processor.bos_id(), processor.eos_id()

        def piece(name: str) -> int | None:
            index = processor.piece_to_id(name)
            return index if processor.id_to_piece(index) == name else None

        self.prefix_id, self.suffix_id = piece("▁<PRE>"), piece("▁<SUF>")
        self.middle_id, self.eot_id = piece("▁<MID>"), piece("▁<EOT>")
        self.step_id = piece("<step>")

    def encode(self, text: str, bos: bool, eos: bool) -> list[int]:
        return [self.bos_id] * bos + self.sp.encode(text) + [self.eos_id] * eos

    def encode_infilling(self, text: str) -> list[int]:
        return self.sp.encode("☺" + text)[2:]

    def decode_infilling(self, ids: list[int]) -> str:
        return self.sp.decode([self.sp.piece_to_id("☺"), *ids])[1:]

    def infilling_prompt(self, prefix: str, suffix: str, suffix_first: bool = False) -> list[int]:
        if suffix_first:
            return [self.bos_id, self.prefix_id, self.suffix_id, *self.encode_infilling(suffix), self.middle_id,
                    *self.encode(prefix, False, False)]  # fmt: skip
        return [self.bos_id, self.prefix_id, *self.encode(prefix, False, False), self.suffix_id,
                *self.encode_infilling(suffix), self.middle_id]  # fmt: skip

    def llama2_chat(self, dialog: list[dict[str, str]]) -> list[int]:
        if dialog[0]["role"] == "system":
            merged = "<<SYS>>\n" + dialog[0]["content"] + "\n<</SYS>>\n\n" + dialog[1]["content"]
            dialog = [{"role": dialog[1]["role"], "content": merged}, *dialog[2:]]
        ids: list[int] = []
        for prompt, answer in zip(dialog[::2], dialog[1::2]):
            text = f"[INST] {prompt['content'].strip()} [/INST] {answer['content'].strip()} "
            ids += self.encode(text, bos=True, eos=True)
        ids += self.encode(f"[INST] {dialog[-1]['content'].strip()} [/INST]", bos=True, eos=False)
        return ids

    def step_chat(self, dialog: list[dict[str, str]]) -> list[int]:
        if dialog[0]["role"] != "system":
            dialog = [{"role": "system", "content": ""}, *dialog]
        ids = [self.bos_id]
        for message in dialog:
            ids += self.sp.encode(" Source: " + message["role"])
            ids += self.sp.encode("\n\n " + message["content"].strip())
            ids.append(self.step_id)
        ids += self.sp.encode(" Source: assistant\nDestination: user") + self.sp.encode("\n\n ")
        return ids
