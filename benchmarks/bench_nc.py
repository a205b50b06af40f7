"""Cost of the NCC regulariser and of the per-epoch metrics in nc_experiments, on this machine.

    python -m benchmarks.bench_nc                 # CPU preset shapes and paper shapes, 2 threads
    python -m benchmarks.bench_nc --threads 1

For each shape: a training step with and without the NCC regulariser (forward, loss, backward, SGD
step; median of repeats) and the metric computation of one epoch (`nc_experiments.train.evaluate`
minus its forward passes: NCC on both splits, RF bound and exact, ||W||, NC1-NC4, the angles) against
the training time of one epoch (steps per epoch x the measured step). Inputs are random tensors of the
experiments' shapes: step and metric cost do not depend on the values.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from common import (ArgumentParser, capture_features, class_mean_angles, ncc, neural_collapse,
                    relative_flatness_bound, relative_flatness_exact)
from nc_experiments.model import ResNet18

SHAPES = {  # name: (channels, image size, width, CIFAR stem, train images, val images)
    "cpu preset (Fashion-MNIST 16x16, width 16)": (1, 16, 16, True, 1000, 1000),
    "paper (CIFAR-10 32x32, ResNet-18)": (3, 32, 64, False, 50_000, 10_000),
}


def _median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def metrics(phi_train, y_train, phi_val, y_val, weight, bias):
    """The metric part of one evaluation, as train.evaluate computes it (float64)."""
    phi, w, b = phi_train.double(), weight.double(), bias.double()
    ncc(phi, y_train), ncc(phi_val.double(), y_val)
    relative_flatness_bound(phi, w, b), relative_flatness_exact(phi, w, b)
    neural_collapse(phi, y_train, w, b), class_mean_angles(phi, y_train)


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

    plain, regularised = _median_time(lambda: step(False), repeats), _median_time(lambda: step(True), repeats)
    dim = 8 * width
    phi_train, phi_val = torch.randn(n_train, dim).relu(), torch.randn(n_val, dim).relu()
    y_train, y_val = torch.arange(n_train) % 10, torch.arange(n_val) % 10
    metric_s = _median_time(lambda: metrics(phi_train, y_train, phi_val, y_val, model.fc.weight.detach(),
                                            model.fc.bias.detach()), max(1, repeats // 3))
    epoch_s = -(-n_train // 64) * regularised
    return {"shape": name, "step_s": plain, "step_reg_s": regularised, "reg_overhead": regularised / plain - 1,
            "metric_s": metric_s, "epoch_s": epoch_s, "metric_share": metric_s / epoch_s}


def main(argv=None):
    parser = ArgumentParser(prog="python -m benchmarks.bench_nc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [measure(name, *shape, args.repeats) for name, shape in SHAPES.items()]
    print(f"torch {torch.__version__}, {args.threads} threads\n")
    print("| shapes | training step | with NCC regulariser | regulariser overhead | epoch metrics | "
          "training epoch (steps x step) | metrics / epoch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shape']} | {1e3 * r['step_s']:.1f} ms | {1e3 * r['step_reg_s']:.1f} ms | "
              f"{100 * r['reg_overhead']:+.1f}% | {r['metric_s']:.3f} s | {r['epoch_s']:.1f} s | "
              f"{100 * r['metric_share']:.2f}% |")
    return rows


if __name__ == "__main__":
    main()
