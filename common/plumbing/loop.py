"""What every training loop shares, under one process or torchrun: opening (or resuming) the run
(`start_run`), sums over an epoch's steps kept on the device (no host sync until the epoch ends) with the
divergence check (`EpochSums`), the loss each rank backpropagates (`global_batch_loss`), the epoch's row and
checkpoint (`end_epoch`) and the rows a train.py returns (`run_rows`)."""

from __future__ import annotations

import math

import torch

from .checkpoint import load_checkpoint
from .cli import Diverged, UsageError
from .config import command_line
from .distributed import all_gather_objects, barrier, current
from .runlog import RunLog, read_metrics
from .seeding import get_rng_state, set_rng_state

__all__ = ["EpochSums", "start_run", "global_batch_loss", "end_epoch", "run_rows", "to_device"]


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor (a batch order, a tokenised batch) on `device`; to a GPU through pinned memory and a
    non-blocking copy, so the host does not wait for the device's queue (a pageable copy would)."""
    if torch.device(device).type != "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


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


def start_run(run, argv, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """(log, state) as `RunLog(...).start(model, optimizer)` gives them, for a train.py that runs under torchrun:
    rank 0 alone opens the log (config.json records world_size) and resumes; the other ranks get log None,
    wait, then load the same checkpoint (model, optimizer, and their own RNG state from the checkpoint's
    extra "rng_ranks", which the loop saves with `all_gather_objects(get_rng_state())`). A UsageError of rank
    0 (another config in the folder, an unwritable folder) is raised on every rank. state is None for a
    finished run, else a dict with "step"."""
    info = current()
    log, state, error = None, None, None
    if info.is_main:
        try:
            log = RunLog(run.run_dir, run.config, argv=command_line(argv), device=str(run.device),
                         world_size=info.world_size, experiment=run.experiment, trackers=run.args.tracker)
            state = log.start(model, optimizer, map_location=run.device)
        except UsageError as err:
            error = str(err)
    if not info.enabled:
        if error:
            raise UsageError(error)
        return log, state
    error, step = all_gather_objects((error, None if state is None else state["step"]))[0]
    if error:
        raise UsageError(error)
    if step is None:  # finished
        return log, None
    if step > 0:
        saved = load_checkpoint(run.run_dir / "checkpoint.pt", map_location=run.device)
        if not info.is_main:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
        ranks = saved["extra"].get("rng_ranks", [])
        if info.rank < len(ranks):  # a checkpoint of a run with fewer processes has no state for this rank
            set_rng_state(ranks[info.rank])
    return log, {"step": step}


def run_rows(log, run_dir) -> list[dict]:
    """What a train.py's main returns, on every rank: rank 0 closes its log; the others read it once all
    ranks are done."""
    rows = log.rows_and_close() if log is not None else None
    barrier()
    return rows if rows is not None else read_metrics(run_dir / "metrics.jsonl")


def global_batch_loss(loss: torch.Tensor, ce: torch.Tensor, local_rows: int, global_rows: int) -> torch.Tensor:
    """The loss this rank backpropagates. DistributedDataParallel averages the ranks' gradients, so each rank's
    mean CE over its `local_rows` is weighted by their share of the `global_rows` of the global batch:

        loss + ce * (local_rows * world_size / global_rows - 1)

    and the average over ranks is the gradient of the global batch's mean CE (`loss` holds `ce` once; its
    regularisers are over the gathered global batch already). One process: `loss` itself. The global batch
    size comes from the caller (it knows the batch plan), so no collective is spent on it."""
    world_size = current().world_size
    if world_size == 1:
        return loss
    return loss + ce * (local_rows * world_size / global_rows - 1)


def end_epoch(log, epoch: int, row: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              show: tuple[str, ...] = ()) -> None:
    """The end of `epoch` (counted from 1): every rank's RNG state is gathered (`start_run` gives each rank its
    own back on a resume), then rank 0 appends `row` to the log, saves the checkpoint and prints the `show`
    keys of the row on one line. Every rank calls it (the gather is a collective under torchrun)."""
    rng_ranks = all_gather_objects(get_rng_state())
    if current().is_main:
        log.append(row)
        log.save_checkpoint(epoch, model, optimizer, rng_ranks=rng_ranks)
        print(f"epoch {epoch:>4}  " + "  ".join(f"{k} {row[k]:.4g}" for k in show), flush=True)
