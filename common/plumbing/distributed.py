"""Data-parallel training with torchrun: which process this is, and collectives that keep the regularisers
and the epoch metrics exact across ranks.

Launch any train.py with `torchrun --nproc_per_node N -m <folder>.train ...`: torchrun sets RANK,
WORLD_SIZE and LOCAL_RANK, `from_env` reads them and joins the process group (NCCL on CUDA, gloo on the
CPU). The convention of this repository: `--batch_size` is the *global* batch; each rank takes its
contiguous share of every global batch (`rank_rows`), so N processes see the rows one process would.

Two gathers, both concatenating the ranks' rows in rank order (ranks may hold different numbers of
rows, e.g. in the last batch of an epoch):

- `gather_rows(x)`: no graph, for the epoch metrics: NCC, the RF bound and exact value, NC1-NC4, the
  angles and representativeness are computed from all ranks' features, so they equal the single-process
  values on the same data (tests/plumbing/test_distributed.py).
- `gather_rows(x, differentiable=True)`: with the graph, for the batch regularisers (NCC, RF) over the
  global batch. Its backward sums, over ranks, the gradient each rank's loss sends to a row and hands it
  to the rank that owns the row; with DistributedDataParallel averaging the parameter gradients over the
  N ranks, a loss `mean CE(local rows) - lambda * reg(gathered rows)` on every rank gives exactly the
  gradient of `CE(global batch) - lambda * reg(global batch)` when the ranks hold equal shares.
"""

from __future__ import annotations

import atexit
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["Distributed", "current", "from_env", "gather_rows", "rank_rows", "all_gather_objects", "barrier", "wrap",
           "GlobalBatchNorm", "convert_batchnorm_"]


@dataclass(frozen=True)
class Distributed:
    """rank, world_size and local_rank of this process (0, 1, 0 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun (even with one process: NCCL and DDP then run all the same)

    @property
    def enabled(self) -> bool:
        return self.launched

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes logs, checkpoints and figures."""
        return self.rank == 0


def current() -> Distributed:
    """This process's place in a torchrun launch, from the environment (no process group is started). A launch
    of one process (`--nproc_per_node 1`) counts: it runs the process group and DDP as a larger one does."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return Distributed()
    return Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")),
                       launched=True)


def barrier() -> None:
    """Wait for every rank (nothing without torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def from_env(device_type: str = "cpu") -> Distributed:
    """The torchrun launch this process belongs to (RANK, WORLD_SIZE, LOCAL_RANK in the environment), with the
    default process group initialised (NCCL for CUDA devices, gloo otherwise); Distributed() without it."""
    info = current()
    if not info.enabled:
        return info
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)  # "cuda" is then this rank's GPU
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        atexit.register(shutdown)
    return info


def shutdown() -> None:
    """Leave the default process group (nothing without one), after a garbage collection.

    The collection first frees what a reference cycle still holds of the group (DistributedDataParallel's
    reducer, gathered tensors); freed later, at interpreter exit, a gloo process sometimes aborted
    ("terminate called without an active exception") after a finished run. Call it once the models that use
    the group are no longer referenced; `from_env` registers it to run at exit."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def rank_rows(n: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch of n that `rank` takes: contiguous shares in rank order, sizes differing by
    at most one (torch.tensor_split's split)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def _sizes(x: Tensor) -> list[int]:
    size = torch.tensor([len(x)], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s) for s in sizes]


def _gather_padded(x: Tensor, sizes: list[int]) -> Tensor:
    padded = torch.zeros((max(sizes), *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[:len(x)] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        sizes = _sizes(x)
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return _gather_padded(x, sizes)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # every rank's loss used every row: sum their gradients
        start = sum(ctx.sizes[:ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]]


def gather_rows(x: Tensor, differentiable: bool = False) -> Tensor:
    """All ranks' rows of x (N_r, ...) concatenated in rank order, on every rank; x itself without torchrun.
    `differentiable`: keep the graph (see the module docstring for what the gradient is)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    if differentiable:
        return _GatherRows.apply(x)
    with torch.no_grad():
        return _gather_padded(x.detach(), _sizes(x))


def all_gather_objects(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (picklable objects, e.g. RNG states); [obj] without
    torchrun."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def wrap(model: torch.nn.Module, device: torch.device, sync_bn: bool = False) -> torch.nn.Module:
    """The model for the training forward pass: DistributedDataParallel under torchrun, else the model.

    By default BatchNorm normalises each rank's share of the global batch with that share's statistics (as
    DDP does). `sync_bn` (torchvision's reference scripts' --sync-bn) makes every BatchNorm layer of `model`
    normalise with the global batch's statistics, in place: torch's SyncBatchNorm on a GPU, on the CPU
    (where torch has none) `GlobalBatchNorm`, the same arithmetic with two all-reduces."""
    if not current().enabled:
        return model
    if sync_bn:
        convert_batchnorm_(model, torch.nn.SyncBatchNorm if device.type != "cpu" else GlobalBatchNorm)
    ids = [torch.cuda.current_device()] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


class _AllReduceSum(torch.autograd.Function):
    """The sum over ranks, with its gradient: every rank's output is the sum, so a rank's input gets the sum of
    all ranks' gradients."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of a torchrun launch (any device, any backend): in training mode the
    mean and the biased variance per channel are sums over all ranks' rows (two all-reduces, differentiable),
    the running statistics are updated with the unbiased variance, as `torch.nn.SyncBatchNorm`; in eval mode,
    or without a process group, plain BatchNorm. Equal to BatchNorm on the concatenated ranks' batches
    (tests/plumbing/test_distributed.py)."""

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims, shape = [0, *range(2, x.dim())], (1, -1, *[1] * (x.dim() - 2))
        count = _AllReduceSum.apply(x.new_tensor([x.numel() // x.shape[1]]))
        mean = _AllReduceSum.apply(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * count / (count - 1).clamp(min=1), factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out


def convert_batchnorm_(module: torch.nn.Module, kind) -> torch.nn.Module:
    """Replace every BatchNorm layer below `module` (in place) by `kind` (SyncBatchNorm or GlobalBatchNorm) with
    the same parameters and buffers (the same tensors: an optimizer built before keeps them)."""
    for name, child in module.named_children():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and type(child) is not kind:
            new = kind(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            if child.affine:
                new.weight, new.bias = child.weight, child.bias
            if child.track_running_stats:
                new.running_mean, new.running_var = child.running_mean, child.running_var
                new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_batchnorm_(child, kind)
    return module
