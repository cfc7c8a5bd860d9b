"""`FimDataCollator`: pads FIM examples into batches for `Trainer`, masking the loss by position, never by id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

IGNORE_INDEX = -100  # the label value torch's cross-entropy (and so every transformers model) skips


@dataclass
class FimDataCollator:
    """Pad `fim_example` outputs to a batch: `input_ids`, `attention_mask` and `labels` as tensors.

    Padding positions get `attention_mask` 0 and label -100. They are found by position, not by comparing ids with
    the pad id, so `</s>` and `▁<EOT>` keep their loss even when the pad id equals one of them (the usual reason a
    fine-tuned model never stops). With `middle_only=True` the first `prompt_length` tokens of each example (what an
    inference prompt supplies) get label -100 too, so the loss covers only what the model generates.

    With `Trainer`, pass `TrainingArguments(remove_unused_columns=False)` so that `prompt_length` reaches the
    collator.

    Args:
        pad_token_id: the id written into padding positions (never trained on, never attended to).
        middle_only: train on the generated part of each example only.
        pad_to_multiple_of: round each batch's length up to a multiple of this (e.g. 8 for tensor cores).
        max_length: refuse examples longer than this, rather than silently cutting off their `▁<EOT>`.
    """

    pad_token_id: int = 0
    middle_only: bool = False
    pad_to_multiple_of: int | None = None
    max_length: int | None = None

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate a list of examples into a batch of tensors (right padding)."""
        if not features:
            raise ValueError("cannot collate an empty list of examples")
        rows = [[int(token) for token in feature["input_ids"]] for feature in features]
        labels = [[int(token) for token in feature.get("labels", row)] for feature, row in zip(features, rows)]
        for index, (row, label) in enumerate(zip(rows, labels)):
            if len(label) != len(row):
                raise ValueError(f"example {index}: labels has {len(label)} tokens but input_ids has {len(row)}")
            if self.max_length is not None and len(row) > self.max_length:
                raise ValueError(f"example {index} has {len(row)} tokens, over max_length={self.max_length}")
        if self.middle_only:
            for index, (feature, label) in enumerate(zip(features, labels)):
                if "prompt_length" not in feature:
                    raise ValueError(
                        f"example {index} has no prompt_length, which middle_only needs (build examples with "
                        "fim_example, and pass TrainingArguments(remove_unused_columns=False) to Trainer)"
                    )
                given = int(feature["prompt_length"])
                label[:given] = [IGNORE_INDEX] * min(given, len(label))
        width = max(len(row) for row in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        label_ids = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        for index, (row, label) in enumerate(zip(rows, labels)):
            input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention[index, : len(row)] = 1
            label_ids[index, : len(row)] = torch.tensor(label, dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": label_ids}


__all__ = ["IGNORE_INDEX", "FimDataCollator"]
