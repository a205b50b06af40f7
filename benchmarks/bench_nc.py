"""Cost of the NCC regulariser and of the per-epoch metrics in nc_experiments, on this machine.

    python -m benchmarks.bench_nc                 # CPU preset shapes and paper shapes, 2 threads
    python -m benchmarks.bench_nc --threads 1 --shapes cpu

For each shape: a training step without and with the NCC regulariser (forward, loss, backward, SGD
step), timed alternately so that both see the same machine state, median of the per-pair ratios; the
regulariser's own work (batch NCC forward and its backward into the features), timed alone, against
the step; and the metric computation of one epoch (`common.images.split_metrics` on both
splits: NCC, RF bound and exact, ||W||, NC1-NC4, the angles; the eval forward passes not included)
against the training time of one epoch (steps per epoch x the measured step). Inputs are random
tensors of the experiments' shapes: step and metric cost do not depend on the values.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from benchmarks.timing import timed
from common import ArgumentParser, capture_features, markdown_table, ncc
from common.images import ResNet18, split_metrics

SHAPES = {  # name: (channels, image size, width, CIFAR stem, train images, val images)
    "cpu preset (Fashion-MNIST 16x16, width 16)": (1, 16, 16, True, 1000, 1000),
    "paper (CIFAR-10 32x32, ResNet-18)": (3, 32, 64, False, 50_000, 10_000),
}


def _seconds(fn):
    return timed(fn)[0]


def _median_time(fn, repeats):
    fn()
    return statistics.median(_seconds(fn) for _ in range(repeats))


def measure(name, channels, size, width, cifar_stem, n_train, n_val, repeats):
    torch.manual_seed(0)
    model = ResNet18(10, width, channels, cifar_stem)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(64, channels, size, size), torch.arange(64) % 10

    def step(regularised):
        with capture_features(model, model.fc) as cap:
            logits = model(x)
        loss = F.cross_entropy(logits, y) - (1e-3 * ncc(cap.features, y) if regularised else 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up: first-touch allocations
        step(False), step(True)
    pairs = []  # (plain, regularised) seconds, alternating which runs first
    for r in range(repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        times = {regularised: _seconds(lambda: step(regularised)) for regularised in order}
        pairs.append((times[False], times[True]))
    plain, regularised = (statistics.median(t) for t in zip(*pairs))
    dim = 8 * width
    phi = torch.randn(64, dim).relu().requires_grad_()
    reg_s = _median_time(lambda: (1e-3 * ncc(phi, y)).backward(), 10 * repeats)  # the regulariser's own work
    head = model.fc
    phi_train, phi_val = torch.randn(n_train, dim).relu(), torch.randn(n_val, dim).relu()
    y_train, y_val = torch.arange(n_train) % 10, torch.arange(n_val) % 10
    with torch.no_grad():
        logits_train, logits_val = head(phi_train), head(phi_val)
    metric_s = _median_time(lambda: (split_metrics("train", phi_train, logits_train, y_train, head),
                                     split_metrics("val", phi_val, logits_val, y_val, head)), max(1, repeats // 5))
    epoch_s = -(-n_train // 64) * regularised
    return {"shape": name, "step_s": plain, "step_reg_s": regularised,
            "reg_overhead": statistics.median(r / p for p, r in pairs) - 1, "reg_s": reg_s,
            "reg_share": reg_s / plain, "metric_s": metric_s, "epoch_s": epoch_s, "metric_share": metric_s / epoch_s}


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.bench_nc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--shapes", choices=["all", "cpu", "paper"], default="all")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        rows = [measure(name, *shape, args.repeats) for name, shape in SHAPES.items()
                if args.shapes in ("all", name.split()[0])]
    finally:
        torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeats} alternating step pairs\n")
    print(markdown_table(
        ["shapes", "training step", "with NCC regulariser", "step ratio - 1 (median of pairs)",
         "regulariser alone (NCC fwd + bwd)", "epoch metrics", "training epoch (steps x step)", "metrics / epoch"],
        [[r["shape"], f"{1e3 * r['step_s']:.1f} ms", f"{1e3 * r['step_reg_s']:.1f} ms", f"{100 * r['reg_overhead']:+.1f}%",
          f"{1e3 * r['reg_s']:.2f} ms ({100 * r['reg_share']:.2f}% of a step)", f"{r['metric_s']:.3f} s",
          f"{r['epoch_s']:.1f} s", f"{100 * r['metric_share']:.2f}%"] for r in rows]))
    return rows


if __name__ == "__main__":
    main()
