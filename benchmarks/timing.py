"""Clock reads for the benchmarks: the device is synchronised before each read, so a GPU's queued work is
inside the interval it belongs to (on a CPU the synchronisation is a no-op)."""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

__all__ = ["synchronize", "timed", "median_seconds", "alternating", "epoch_metric_seconds", "measure_shapes"]


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


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Call fn once to warm up, then the median seconds of `repeats` timed calls."""
    import statistics

    fn()
    return statistics.median(timed(fn)[0] for _ in range(max(1, repeats)))


def alternating(first: Callable[[], Any], second: Callable[[], Any], repeats: int) -> tuple[float, float, float]:
    """Time `first` and `second` in `repeats` pairs, alternating which runs first so that both see the same
    machine state; returns (median seconds of first, median of second, median of the per-pair ratios)."""
    import statistics

    for _ in range(2):  # warm-up: first-touch allocations
        first(), second()
    pairs = []
    for r in range(repeats):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        seconds = {i: timed((first, second)[i])[0] for i in order}
        pairs.append((seconds[0], seconds[1]))
    return (statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs),
            statistics.median(b / a for a, b in pairs))


def epoch_metric_seconds(head: torch.nn.Linear, n_train: int, n_val: int, repeats: int) -> float:
    """Median seconds of `common.images.split_metrics` on both splits of an image experiment's epoch (random
    ReLU features of the head's input width; the eval forward passes not included)."""
    from common.images import split_metrics

    dim = head.in_features
    phi_train, phi_val = torch.randn(n_train, dim).relu(), torch.randn(n_val, dim).relu()
    y_train, y_val = torch.arange(n_train) % 10, torch.arange(n_val) % 10
    with torch.no_grad():
        logits_train, logits_val = head(phi_train), head(phi_val)

    def both():
        return (split_metrics("train", phi_train, logits_train, y_train, head),
                split_metrics("val", phi_val, logits_val, y_val, head))

    return median_seconds(both, repeats)


def measure_shapes(argv, prog: str, doc: str, shapes: dict, measure: Callable) -> list[dict]:
    """The command line of an image-experiment benchmark (--threads, --repeats, --shapes all|cpu|paper):
    `measure(name, *shape, repeats)` for each selected shape at that thread count (restored afterwards).
    Prints the header line and returns the rows."""
    from common import ArgumentParser

    parser = ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--shapes", choices=["all", "cpu", "paper"], default="all")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        rows = [measure(name, *shape, args.repeats) for name, shape in shapes.items()
                if args.shapes in ("all", name.split()[0])]
    finally:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} alternating step pairs\n")
    return rows
