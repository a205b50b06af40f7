"""Bookkeeping inside a training loop that every experiment shares: sums over an epoch's steps kept on
the device (no host sync until the epoch ends), read once, with the divergence check."""

from __future__ import annotations

import math

import torch

from .cli import Diverged

__all__ = ["EpochSums"]


class EpochSums:
    """Running sums of per-step values in float64 on the values' device; `add` never syncs with the host.

        sums = EpochSums()
        for x, y in batches:
            ...
            sums.add(loss=loss * len(y), correct=(logits.argmax(1) == y).sum())
        totals = sums.totals()   # {"loss": float, "correct": float}: one host read
    """

    def __init__(self) -> None:
        self._sums: dict[str, torch.Tensor] = {}

    def add(self, **values: torch.Tensor) -> None:
        for key, value in values.items():
            value = torch.as_tensor(value).detach().double()
            self._sums[key] = self._sums[key] + value if key in self._sums else value

    def totals(self, reduce: bool = False) -> dict[str, float]:
        """The sums as Python floats; with `reduce`, summed over the ranks of a torchrun launch."""
        if reduce and self._sums:
            import torch.distributed as dist

            stacked = torch.stack([v.reshape(()) for v in self._sums.values()])
            dist.all_reduce(stacked)
            return {key: value.item() for key, value in zip(self._sums, stacked)}
        return {key: value.item() for key, value in self._sums.items()}

    @staticmethod
    def check_finite(value: float, where: str, run_dir, hint: str) -> None:
        """Raise Diverged when `value` (the epoch's training loss) is not finite. Checked before the epoch's
        row and checkpoint are written, so the last checkpoint is the last good one."""
        if not math.isfinite(value):
            raise Diverged(f"mean training loss {value} in {where}; the last good checkpoint (the previous "
                           f"epoch) is kept in {run_dir}; {hint}")
