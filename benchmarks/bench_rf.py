"""Cost of the relative-flatness regulariser and of the fixed-definition RF measurement in rf_resnet18.

    python -m benchmarks.bench_rf                 # CPU preset shapes and paper shapes, 2 threads
    python -m benchmarks.bench_rf --threads 1 --shapes cpu

For each shape: a training step without the term (forward, CE, backward, SGD step) and with everything
an rf_* step adds (the regulariser at temperature 2 on normalised features, the fixed-definition RF bound
in float64, the Frobenius cap after the step; common.unplug.regularisation.rf_terms and cap_weight_), timed
alternately so that both see the same machine state, median of the per-pair ratios (target: at most
+10%); and the eval-mode measurement of one epoch (`common.images.split_metrics` on both splits: NCC,
the RF bound and exact value, NC1-NC4, angles; the eval forward passes not included) against the training
time of one epoch (target: at most 5%). Inputs are random tensors of the experiments' shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.timing import alternating, epoch_metric_seconds, measure_shapes
from common import cap_weight_, capture_features, markdown_table
from common.images import ResNet18
from common.unplug import rf_terms

SHAPES = {  # name: (channels, image size, width, CIFAR stem, train images, val images)
    "cpu preset (Fashion-MNIST 16x16, width 16)": (1, 16, 16, True, 1000, 1000),
    "paper (CIFAR-10 32x32, ResNet-18)": (3, 32, 64, False, 50_000, 10_000),
}
CONFIG = {"lam": 1e-2, "temperature": 2.0, "normalise_features": True}


def measure(name, channels, size, width, cifar_stem, n_train, n_val, repeats):
    torch.manual_seed(0)
    model = ResNet18(10, width, channels, cifar_stem)
    head = model.fc
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(64, channels, size, size), torch.arange(64) % 10

    def step(regularised):
        with capture_features(model, head) as cap:
            logits = model(x)
        ce = F.cross_entropy(logits, y)
        loss = rf_terms(ce, cap.features, head.weight, logits, CONFIG, True)[0] if regularised else ce
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if regularised:
            cap_weight_(head.weight, 50.0)

    plain, regularised, ratio = alternating(lambda: step(False), lambda: step(True), repeats)
    metric_s = epoch_metric_seconds(head, n_train, n_val, max(1, repeats // 5))
    epoch_s = -(-n_train // 64) * regularised
    return {"shape": name, "step_s": plain, "step_reg_s": regularised,
            "reg_overhead": ratio - 1,
            "metric_s": metric_s, "epoch_s": epoch_s, "metric_share": metric_s / epoch_s}


def main(argv=None):
    rows = measure_shapes(argv, "python -m benchmarks.bench_rf", __doc__, SHAPES, measure)
    print(markdown_table(
        ["shapes", "training step", "with the RF term, fixed RF and cap", "step ratio - 1 (median of pairs; target <= 10%)",
         "epoch measurement (eval metrics)", "training epoch (steps x step)", "measurement / epoch (target <= 5%)"],
        [[r["shape"], f"{1e3 * r['step_s']:.1f} ms", f"{1e3 * r['step_reg_s']:.1f} ms", f"{100 * r['reg_overhead']:+.1f}%",
          f"{r['metric_s']:.3f} s", f"{r['epoch_s']:.1f} s", f"{100 * r['metric_share']:.2f}%"] for r in rows]))
    return rows


if __name__ == "__main__":
    main()
