"""Seeding and RNG state capture, so that a resumed run continues the same random stream; and the record of
what else decides a run's numbers (the CPU's kernels, the thread count), so that a rerun can match it."""

from __future__ import annotations

import os
import platform
import random

from pathlib import Path

import numpy as np
import torch

__all__ = ["seed_everything", "get_rng_state", "set_rng_state", "PORTABLE_KERNELS", "environment"]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and all CUDA devices).

    deterministic=True also asks torch for deterministic kernels (slower on GPU; some ops then
    raise) and disables cuDNN autotuning.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def get_rng_state() -> dict:
    """All global RNG states (Python, NumPy, torch CPU, torch CUDA if available)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `get_rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# The portable kernel setting (exported by every run_script.sh through common/plumbing/portable_kernels.sh; KERNELS=native
# turns it off): torch's own CPU kernels, MKL's and oneDNN's at AVX2, whatever the CPU offers beyond it. Each
# library otherwise picks its code path by the CPU it finds (AVX-512 on one machine, AVX2 on another), and the
# paths round differently, and grokking amplifies the difference into other onsets (the committed runs in each
# setting: grokking_nc_rf/README.md, "Reproducibility").
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str | None = None) -> dict:
    """What besides the commit, the config and the seed decides a run's rows, for config.json: the CPU, the
    kernel set torch's own CPU kernels use, the thread count, the kernel variables of PORTABLE_KERNELS as set
    (None: unset, the library's own choice), and the GPU for a CUDA run. Same commit, config, seed and
    environment (threads and kernel set on the CPU) give the same rows; `python -m common.report --verify`
    reruns a run in the environment it records."""
    record = {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "threads": torch.get_num_threads(), "kernel_env": {k: os.environ.get(k) for k in PORTABLE_KERNELS}}
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return record
