"""Clock reads for the benchmarks: the device is synchronised before each read, so a GPU's queued work is
inside the interval it belongs to (on a CPU the synchronisation is a no-op)."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

__all__ = ["synchronize", "timed"]


def synchronize() -> None:
    """Wait for the work queued on every accelerator torch knows of (CUDA, MPS)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    if hasattr(torch, "mps") and torch.backends.mps.is_available():
        torch.mps.synchronize()


def timed(fn: Callable[[], Any], number: int = 1) -> tuple[float, Any]:
    """Run fn `number` times; returns (seconds for all the calls, the last value)."""
    synchronize()
    start = time.perf_counter()
    value = None
    for _ in range(number):
        value = fn()
    synchronize()
    return time.perf_counter() - start, value
