"""The rf_* training step under DDP on 2 CPU processes (gloo): the step as `common.unplug.loop` takes it now
(the global batch size from the batch plan: `global_batch_loss`) against the step as it was (one more
all_gather per step, only to learn the global batch size), alternated in one run.

    python -m benchmarks.bench_ddp_step [--steps 60] [--batch_size 64] [--width 256]

Each process runs one thread. The model: a 2-layer MLP on 784 inputs and a linear classifier (10 classes),
the regulariser over the gathered global batch (`rf_terms`, the loop's), SGD. Prints the median milliseconds
per step of each variant and their ratio. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from common import capture_features
from common.plumbing.distributed import gather_rows, shutdown, wrap
from common.plumbing.loop import global_batch_loss
from common.unplug import rf_terms

CONFIG = {"lam": 0.1, "temperature": 2.0, "normalise_features": True, "regularizer": "rf", "cap": "frobenius",
          "max_norm": 50.0}


def _worker(rank: int, world: int, store: str, args, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    times = _time_steps(world, args)  # the model and its DDP wrapper are gone when it returns
    if rank == 0:
        with open(out, "w") as f:
            f.write(f"{statistics.median(times[False]) * 1e3} {statistics.median(times[True]) * 1e3}\n")
    shutdown()


def _time_steps(world: int, args) -> dict[bool, list[float]]:
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Linear(784, args.width), torch.nn.ReLU(), torch.nn.Linear(args.width, args.width),
                               torch.nn.ReLU())
    head = torch.nn.Linear(args.width, 10)
    model = torch.nn.Sequential(body, head)
    net = wrap(model, torch.device("cpu"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    local = args.batch_size // world
    x, y = torch.randn(local, 784), torch.randint(0, 10, (local,))

    def step(extra_gather: bool) -> None:
        with capture_features(net, head) as cap:
            logits = net(x)
        phi = cap.features
        ce = F.cross_entropy(logits, y)
        loss, _, _ = rf_terms(ce, gather_rows(phi, True), head.weight, gather_rows(logits, True), CONFIG, True)
        optimizer.zero_grad(set_to_none=True)
        total = len(gather_rows(y)) if extra_gather else args.batch_size  # before: a collective; now: the plan
        global_batch_loss(loss, ce, len(y), total).backward()
        optimizer.step()

    times = {True: [], False: []}
    for _ in range(5):
        step(False), step(True)  # warm-up
    for i in range(args.steps):
        for variant in ((False, True) if i % 2 == 0 else (True, False)):
            dist.barrier()
            start = time.perf_counter()
            step(variant)
            times[variant].append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ddp_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch_size", type=int, default=64, help="global batch, split over the 2 processes")
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 2 or args.batch_size % 2 or args.width < 1:
        parser.error("--steps and --width must be >= 1, --batch_size even and >= 2")
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "times")
        mp.spawn(_worker, args=(2, os.path.join(folder, "store"), args, out), nprocs=2, join=True)
        now, before = map(float, open(out).read().split())
    print(f"DDP step on 2 gloo processes, global batch {args.batch_size}, width {args.width}, {args.steps} steps each:")
    print(f"  now (global batch size from the plan):     {now:.3f} ms")
    print(f"  before (one more all_gather per step):      {before:.3f} ms")
    print(f"  before / now: {before / now:.3f}")
    return now, before


if __name__ == "__main__":
    main()
