"""What the host gives an engine: the cores it may use and the memory free for its cache."""

from __future__ import annotations

import math
import os

import torch


def default_threads() -> int:
    """The torch intra-op thread count that does not oversubscribe the cores this process may use.

    Decoding is a chain of small matrix products, each split over torch's threads (OpenMP), which spin at every join
    for the slowest of them: one thread that shares its core with another busy process stalls them all (on 2 cores
    with one other busy process, two threads decoded 45 times slower than one). So: the cores this process may run
    on (its CPU affinity, which containers and `taskset` narrow), less those the recent load keeps busy (the 1-minute
    load average), never more than torch's own default (the physical cores) and at least one.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        busy = 0.0
    free = cores - math.ceil(busy - 0.25) if busy > 0.25 else cores  # a load under a quarter of a core is idle
    return max(1, min(cores, free, torch.get_num_threads()))


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on `device` now (the accelerator's free memory, or the host's available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


__all__ = ["available_memory", "default_threads"]
