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

import torch
import torch.nn.functional as F

from benchmarks.timing import alternating, epoch_metric_seconds, measure_shapes, median_seconds
from common import capture_features, markdown_table, ncc
from common.images import ResNet18

SHAPES = {  # name: (channels, image size, width, CIFAR stem, train images, val images)
    "cpu preset (Fashion-MNIST 16x16, width 16)": (1, 16, 16, True, 1000, 1000),
    "paper (CIFAR-10 32x32, ResNet-18)": (3, 32, 64, False, 50_000, 10_000),
}


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

    plain, regularised, ratio = alternating(lambda: step(False), lambda: step(True), repeats)
    phi, y = torch.randn(64, 8 * width).relu().requires_grad_(), torch.arange(64) % 10
    reg_s = median_seconds(lambda: (1e-3 * ncc(phi, y)).backward(), 10 * repeats)  # the regulariser's own work
    metric_s = epoch_metric_seconds(model.fc, n_train, n_val, max(1, repeats // 5))
    epoch_s = -(-n_train // 64) * regularised
    return {"shape": name, "step_s": plain, "step_reg_s": regularised,
            "reg_overhead": ratio - 1, "reg_s": reg_s,
            "reg_share": reg_s / plain, "metric_s": metric_s, "epoch_s": epoch_s, "metric_share": metric_s / epoch_s}


def main(argv=None):
    rows = measure_shapes(argv, "python -m benchmarks.bench_nc", __doc__, SHAPES, measure)
    print(markdown_table(
        ["shapes", "training step", "with NCC regulariser", "step ratio - 1 (median of pairs)",
         "regulariser alone (NCC fwd + bwd)", "epoch metrics", "training epoch (steps x step)", "metrics / epoch"],
        [[r["shape"], f"{1e3 * r['step_s']:.1f} ms", f"{1e3 * r['step_reg_s']:.1f} ms", f"{100 * r['reg_overhead']:+.1f}%",
          f"{1e3 * r['reg_s']:.2f} ms ({100 * r['reg_share']:.2f}% of a step)", f"{r['metric_s']:.3f} s",
          f"{r['epoch_s']:.1f} s", f"{100 * r['metric_share']:.2f}%"] for r in rows]))
    return rows


if __name__ == "__main__":
    main()
