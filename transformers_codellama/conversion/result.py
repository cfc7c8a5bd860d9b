"""What a conversion reports: `ConversionResult` (imports nothing heavy, so the command line can report without torch)."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# What the model card names as the command when a conversion came from the Python API rather than the command line.
API_COMMAND = "transformers_codellama.conversion.convert.convert(...)"


@dataclass(frozen=True)
class ConversionResult:
    """What `convert` wrote, how long it took and the peak memory of the process."""

    output_dir: Path
    model_size: str
    variant: str
    output_format: str
    dtype: torch.dtype | str  # a torch dtype, or its name where the conversion never imported torch
    weight_files: list[str]
    weight_bytes: int
    seconds: float
    peak_rss_bytes: int
    max_logit_difference: float | None

    def summary(self) -> str:
        """One line: what was written, where, how long, peak memory (and the verification result)."""
        verified = (
            "" if self.max_logit_difference is None else f", verified (max logit diff {self.max_logit_difference:.2g})"
        )
        return (
            f"wrote {self.model_size} {self.variant} ({self.output_format} format, {str(self.dtype).removeprefix('torch.')}): "
            f"{len(self.weight_files)} safetensors shard(s), {self.weight_bytes / 2**30:.2f} GiB, config, tokenizer and "
            f"model card to {self.output_dir} in {self.seconds:.1f} s, peak RSS {self.peak_rss_bytes / 2**20:.0f} MiB{verified}"
        )


def peak_rss_bytes(*, children: bool = False) -> int:
    """Peak resident memory of this process so far (`children`: of the largest of its child processes reaped)."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # kilobytes on Linux, bytes on macOS


__all__ = ["API_COMMAND", "ConversionResult", "peak_rss_bytes"]
