"""Counting the places where the host waits for the device (a "host sync"), on any device.

On a GPU every training step that reads a device value on the host (`.item()`, `torch.unique`, a boolean
mask, `int(tensor)`) or copies pageable memory waits for the whole queue to drain. `HostSyncs` counts them
inside a `with` block in two ways:

- the operators that need device values on the host to run at all (their output size or a Python scalar
  depends on the data), seen by a TorchDispatchMode: on every device, the CPU included, so a test here can
  show that a step of the CPU path would make a GPU wait;
- on CUDA also every synchronisation torch itself reports (`torch.cuda.set_sync_debug_mode("warn")`):
  pageable copies and anything the first list misses.

    with HostSyncs(device) as syncs:
        train_one_epoch()
    syncs.count, syncs.names   # total, and by operator / warning

Per step: run the same epoch with two batch sizes; the counts differ by (syncs per step) x (steps of
difference), see `benchmarks.gpu_check`.
"""

from __future__ import annotations

import warnings
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostSyncs", "DATA_DEPENDENT"]

# Operators whose result needs device values on the host: a Python scalar, or an output size set by the data.
DATA_DEPENDENT = frozenset({
    "aten::_local_scalar_dense", "aten::nonzero", "aten::nonzero_static", "aten::_unique", "aten::_unique2",
    "aten::unique_dim", "aten::unique_consecutive", "aten::masked_select", "aten::is_nonzero",
})


class _Dispatch(TorchDispatchMode):
    def __init__(self, names: Counter) -> None:
        super().__init__()
        self.names = names

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in DATA_DEPENDENT or (name == "aten::repeat_interleave" and "output_size" not in (kwargs or {})
                                      and len(args) == 1):
            self.names[name] += 1
        return func(*args, **(kwargs or {}))


class HostSyncs:
    """Context manager: `count` (int) and `names` (Counter) of the host syncs inside it (module docstring)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.names: Counter = Counter()

    @property
    def count(self) -> int:
        return sum(self.names.values())

    def __enter__(self) -> "HostSyncs":
        self._mode = _Dispatch(self.names)
        self._mode.__enter__()
        if self.device.type == "cuda":
            self._warnings = warnings.catch_warnings(record=True)
            self._caught = self._warnings.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
            self._warnings.__exit__(*exc)
            for w in self._caught:
                if "synchroniz" in str(w.message):
                    self.names["cuda: " + str(w.message).splitlines()[0][:60]] += 1
        self._mode.__exit__(*exc)
