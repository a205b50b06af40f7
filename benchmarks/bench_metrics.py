"""Speed of the vectorised metric library `common` against loops that mirror the original code.

Each row times one metric of `common` and a straightforward loop implementation written below
from the original code (as the original-code spec describes it, sections 1.1, 1.2 and 1.6), on the same inputs,
in one process and with the same thread count, and checks that both give the same value
("max rel. diff"), so the speed-up compares two computations of one number.

    python benchmarks/bench_metrics.py                 # full run, 1 thread (about 30 s)
    python -m benchmarks.bench_metrics --threads 2     # the same on 2 threads
    python -m benchmarks.bench_metrics --quick         # smoke test (< 20 s): smaller loop subsamples,
                                                       # a 10k-sample CIFAR "epoch", one repeat

Timing: time.perf_counter, the device synchronised before each read (benchmarks/timing.py). The `common` functions and the fast loops (regulariser row) are called
once to warm up, then timed `--repeats` times (each repeat runs enough calls to last >= 50 ms)
and the median per call is reported. The slow loops run once (after a warm-up on a few rows).
A loop that is linear in the rows it visits (KDE over validation points, per-sample flatness in
quick mode) is timed on a random subsample and extrapolated linearly; the table says where.
Everything except the regulariser row runs under torch.no_grad(), as a logging call site does.
Inputs are synthetic (seeded) with the paper's shapes; the timings do not depend on the values.
"""

from __future__ import annotations

import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as `python benchmarks/bench_metrics.py`: make `common` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.timing import timed  # noqa: E402
from common.plumbing.seeding import cpu_model  # noqa: E402
from common import (ArgumentParser, UsageError, class_mean_angles, entry_point, markdown_table, ncc,  # noqa: E402
                    neural_collapse, relative_flatness_bound, relative_flatness_exact, representativeness)

# Shapes of the paper's experiments.
GROK_TRAIN, GROK_VAL, GROK_CLASSES, GROK_VOCAB = 4704, 4705, 97, 239  # mod-97 addition, 50/50 split
GROK_DIM, GROK_KDE_DIM = 128, 256  # d_model; "double" representation of App. D (two positions)
CIFAR_TRAIN, CIFAR_DIM, CIFAR_CLASSES, CIFAR_BATCH = 50_000, 512, 10, 64  # ResNet-18 on CIFAR-10

MIN_REPEAT_SECONDS = 0.05  # a timed repeat of a fast function runs this long at least


# ---------------------------------------------------------------------------------------------
# Loop implementations that mirror the original code
# ---------------------------------------------------------------------------------------------

def ncc_loop(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """NCC as the original `compute_cluster` computes it (docs/original_code.md §1.2): Python loops over classes,
    one torch.linalg.norm call per sample for V_c, and a double loop over ordered class pairs.

    V_c = mean_{i in D_c} ||phi_i - mu_c||^2, NCC = mean_{c != c'} (V_c + V_c') / (2 ||mu_c - mu_c'||^2).
    The by-products of the original (mean_list, var_class_cluster_list) are not built, which
    only makes the loop faster. Differentiable, like the regulariser of the original.
    """
    classes = sorted(set(labels.tolist()))
    means, variances = {}, {}
    for c in classes:
        class_features = features[labels == c]  # (n_c, D)
        mean = class_features.mean(0)  # mu_c
        sq_dist = 0.0
        for phi in class_features:
            sq_dist = sq_dist + torch.linalg.norm(phi - mean) ** 2
        means[c], variances[c] = mean, sq_dist / len(class_features)  # V_c
    ratios = []
    for c in classes:
        for c2 in classes:
            if c == c2:
                continue
            ratios.append((variances[c] + variances[c2]) / (2 * torch.linalg.norm(means[c] - means[c2]) ** 2))
    return torch.stack(ratios).mean()


def representativeness_loop(train_features: torch.Tensor, train_logits: torch.Tensor, val_features: torch.Tensor,
                            val_logits: torch.Tensor, val_labels: torch.Tensor, bandwidth: float = 1.0):
    """KDE representativeness as Petzka's `approximateIntViaVKDE_singleRound` (docs/original_code.md §1.4): a double
    Python loop, for each validation point j and each training point i one distance, its square
    root, the kernel weight and the training prediction's cross-entropy against y_j.

        Rep = (1/|T|) sum_j [ l(y_j, f(x_j)) - (1/|S|) sum_i w_i K(sqrt(d_ji) / bw) / bw * l(y_j, f(x_i)) ]

    with w_i = ||phi_i|| / sum_k ||phi_k|| (KDEpy renormalises delta ||phi_i||). The per-sample
    cross-entropies come from log-softmax tables computed once, and the kernel is evaluated with
    math.exp instead of a KDEpy call per pair; both only make the loop faster than the original.
    Returns (Rep, the mean KDE term (1/|T|) sum_j (1/|S|) sum_i ...) as floats.
    """
    train_x, val_x = train_features.numpy(), val_features.numpy()
    train_nll = -torch.log_softmax(train_logits, dim=1).numpy()  # (S, C) l(c, f(x_i))
    val_nll = -torch.log_softmax(val_logits, dim=1).numpy()  # (T, C)
    norms = np.linalg.norm(train_x, axis=1)
    weights = norms / norms.sum()  # w_i
    num_train = len(train_x)
    kernel_constant = 1.0 / (bandwidth * math.sqrt(2 * math.pi))
    total = kde_total = 0.0
    for j in range(len(val_x)):
        x, y = val_x[j], int(val_labels[j])
        kde = 0.0
        for i in range(num_train):
            dist = np.linalg.norm(x - train_x[i])  # d_ji
            r = math.sqrt(dist) / bandwidth
            kernel = weights[i] * math.exp(-0.5 * r * r) * kernel_constant
            kde += kernel * train_nll[i, y]
        total += val_nll[j, y] - kde / num_train
        kde_total += kde / num_train
    return total / len(val_x), kde_total / len(val_x)


def relative_flatness_bound_loop(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`sharpness2` of the original (docs/original_code.md §1.1), one sample at a time: ||W||_F^2 * sum_k p_k (1 - p_k) * ||phi||^2,
    averaged. A per-sample reference: the original evaluates the same formula on each mini-batch."""
    weights_norm = torch.linalg.norm(weight)  # ||W||_F, not squared in the original's name
    values = []
    for phi in features:
        logits = weight @ phi if bias is None else weight @ phi + bias
        probs = torch.softmax(logits, dim=0)
        hessian_first = (probs * (1 - probs)).sum()
        hessian_second = torch.linalg.norm(phi) ** 2
        values.append(weights_norm ** 2 * hessian_first * hessian_second)
    return torch.stack(values).mean()


def relative_flatness_exact_loop(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Exact relative flatness (Def. 3.2, closed form of docs/original_code.md §1.1) one sample at a time:
    ||phi||^2 (sum_s p_s ||w_s||^2 - ||W^T p||^2), averaged. Not in the original code."""
    row_sq_norms = weight.pow(2).sum(1)  # (C,) ||w_s||^2
    values = []
    for phi in features:
        logits = weight @ phi if bias is None else weight @ phi + bias
        probs = torch.softmax(logits, dim=0)
        covariance_trace = probs @ row_sq_norms - (probs @ weight).pow(2).sum()
        values.append(torch.linalg.norm(phi) ** 2 * covariance_trace)
    return torch.stack(values).mean()


# ---------------------------------------------------------------------------------------------
# Inputs and timing
# ---------------------------------------------------------------------------------------------

def _balanced_labels(num: int, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    return (torch.arange(num) % num_classes)[torch.randperm(num, generator=gen)]


def _clustered_features(labels: torch.Tensor, dim: int, num_classes: int, gen: torch.Generator,
                        spread: float = 1.0, noise: float = 1.0) -> torch.Tensor:
    """Features around random class centres, so that NCC and the KDE kernel are of order one."""
    centres = spread * torch.randn(num_classes, dim, generator=gen)
    return centres[labels] + noise * torch.randn(len(labels), dim, generator=gen)


def _logits_for(labels: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    return 3.0 * F.one_hot(labels, num_classes).float() + torch.randn(len(labels), num_classes, generator=gen)


def _time_once(fn):
    return timed(fn)


def _time_fast(fn, repeats: int):
    """Warm up once, then the median over `repeats` of the mean time per call, each repeat running
    as many calls as make it last MIN_REPEAT_SECONDS. Returns (seconds per call, last value)."""
    value = fn()
    number = 1
    while True:
        elapsed, value = _time_calls(fn, number)
        if elapsed >= MIN_REPEAT_SECONDS:
            break
        number = max(number * 2, int(number * 1.2 * MIN_REPEAT_SECONDS / max(elapsed, 1e-9)))
    times = [elapsed / number]
    for _ in range(repeats - 1):
        elapsed, value = _time_calls(fn, number)
        times.append(elapsed / number)
    return statistics.median(times), value


def _time_calls(fn, number: int):
    return timed(fn, number)


def _rel_diff(loop_value, vector_value) -> float:
    loop_value, vector_value = float(loop_value), float(vector_value)
    return abs(loop_value - vector_value) / max(abs(vector_value), 1e-30)


def _tensor_rel_diff(loop_tensor: torch.Tensor, vector_tensor: torch.Tensor) -> float:
    """max |difference| relative to the largest entry of the vectorised tensor."""
    return float((loop_tensor - vector_tensor).abs().max() / vector_tensor.abs().max().clamp_min(1e-30))


def _row(name, inputs, vectorised_s, loop_s, target, rel_diff, loop_note):
    speedup = loop_s / vectorised_s if loop_s is not None else None
    if target is None:
        met = None
    elif target.startswith(">="):
        met = speedup is not None and speedup >= float(target[2:].strip().rstrip("x"))
    else:  # "< T s": a wall-time target for the vectorised side
        met = vectorised_s < float(target[1:].strip().rstrip("s"))
    return {"metric": name, "inputs": inputs, "vectorised_s": vectorised_s, "loop_s": loop_s, "speedup": speedup,
            "target": target, "target_met": met, "rel_diff": rel_diff, "loop_note": loop_note}


# ---------------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------------

def bench_ncc_grokking(gen, repeats):
    labels = _balanced_labels(GROK_TRAIN, GROK_CLASSES, gen)
    features = _clustered_features(labels, GROK_DIM, GROK_CLASSES, gen)
    with torch.no_grad():
        vec_s, vec_value = _time_fast(lambda: ncc(features, labels), repeats)
        ncc_loop(features[:200], labels[:200])  # warm-up
        loop_s, loop_value = _time_once(lambda: ncc_loop(features, labels))
    return _row("ncc", f"{GROK_TRAIN} x {GROK_DIM} f32, {GROK_CLASSES} classes", vec_s, loop_s, ">= 100x",
                _rel_diff(loop_value, vec_value), "measured, full")


def bench_representativeness(gen, repeats, val_points):
    train_labels = _balanced_labels(GROK_TRAIN, GROK_CLASSES, gen)
    val_labels = _balanced_labels(GROK_VAL, GROK_CLASSES, gen)
    centres = 0.3 * torch.randn(GROK_CLASSES, GROK_KDE_DIM, generator=gen)  # d_ji ~ 2 within, ~7 across classes
    train_features = centres[train_labels] + 0.1 * torch.randn(GROK_TRAIN, GROK_KDE_DIM, generator=gen)
    val_features = centres[val_labels] + 0.1 * torch.randn(GROK_VAL, GROK_KDE_DIM, generator=gen)
    train_logits = _logits_for(train_labels, GROK_CLASSES, gen)
    val_logits = _logits_for(val_labels, GROK_CLASSES, gen)
    train = (train_features, train_logits)
    with torch.no_grad():
        vec_s, _ = _time_fast(lambda: representativeness(*train, val_features, val_logits, val_labels), repeats)
        subset = torch.randperm(GROK_VAL, generator=gen)[:val_points]
        val_sub = (val_features[subset], val_logits[subset], val_labels[subset])
        representativeness_loop(*train, *(t[:1] for t in val_sub))  # warm-up
        loop_sub_s, (loop_value, loop_kde) = _time_once(lambda: representativeness_loop(*train, *val_sub))
        # The check: the same subsample through `common`; the KDE term is about 1e-4 of the loss
        # term (Petzka's extra 1/|S|), so it is also compared on its own, taken from a float64 run.
        rep32 = representativeness(*train, *val_sub)
        as64 = [t.double() for t in (*train, val_sub[0], val_sub[1])]
        rep64 = representativeness(as64[0], as64[1], as64[2], as64[3], val_sub[2])
        kde64 = float(F.cross_entropy(as64[3], val_sub[2])) - float(rep64)
    rel = max(_rel_diff(loop_value, rep32), _rel_diff(loop_kde, kde64))
    loop_s = loop_sub_s * GROK_VAL / val_points
    return _row("representativeness (petzka)", f"{GROK_TRAIN} train x {GROK_VAL} val x {GROK_KDE_DIM} f32, "
                f"{GROK_CLASSES} classes", vec_s, loop_s, ">= 100x", rel,
                f"extrapolated from {val_points} of {GROK_VAL} val points ({loop_sub_s:.2f} s measured)")


def bench_ncc_regulariser(gen, repeats):
    labels = _balanced_labels(CIFAR_BATCH, CIFAR_CLASSES, gen)
    base = _clustered_features(labels, CIFAR_DIM, CIFAR_CLASSES, gen)

    def forward_backward(metric):
        features = base.detach().requires_grad_()
        value = metric(features, labels)
        value.backward()
        return value.detach(), features.grad

    vec_s, (vec_value, vec_grad) = _time_fast(lambda: forward_backward(ncc), repeats)
    loop_s, (loop_value, loop_grad) = _time_fast(lambda: forward_backward(ncc_loop), repeats)
    rel = max(_rel_diff(loop_value, vec_value), _tensor_rel_diff(loop_grad, vec_grad))
    return _row("ncc regulariser, forward + backward", f"{CIFAR_BATCH} x {CIFAR_DIM} f32, {CIFAR_CLASSES} classes",
                vec_s, loop_s, ">= 20x", rel, "measured, median (value and gradient checked)")


def _per_sample_loop(loop_fn, vector_fn, features, rest, sample_rows, gen):
    """Time a per-sample loop on `sample_rows` random rows (all rows if None) and extrapolate
    linearly; returns (loop seconds for all rows, rel. diff against `vector_fn` on the same rows, note)."""
    num = len(features)
    if sample_rows is None or sample_rows >= num:
        rows, note = features, "measured, full"
    else:
        rows = features[torch.randperm(num, generator=gen)[:sample_rows]]
        note = f"extrapolated from {sample_rows} of {num} samples"
    loop_fn(rows[:2], *rest)  # warm-up
    loop_s, loop_value = _time_once(lambda: loop_fn(rows, *rest))
    return loop_s * num / len(rows), _rel_diff(loop_value, vector_fn(rows, *rest)), note


def bench_flatness_grokking(gen, repeats, sample_rows):
    features = torch.randn(GROK_TRAIN, GROK_DIM, generator=gen)
    weight = torch.randn(GROK_VOCAB, GROK_DIM, generator=gen) / math.sqrt(GROK_DIM)  # unembedding, no bias
    rows = []
    for name, vector_fn, loop_fn in (("relative_flatness_bound", relative_flatness_bound, relative_flatness_bound_loop),
                                     ("relative_flatness_exact", relative_flatness_exact, relative_flatness_exact_loop)):
        with torch.no_grad():
            vec_s, _ = _time_fast(lambda: vector_fn(features, weight, None), repeats)
            loop_s, rel, note = _per_sample_loop(loop_fn, vector_fn, features, (weight, None), sample_rows, gen)
        rows.append(_row(name, f"{GROK_TRAIN} x {GROK_DIM} f32, W {GROK_VOCAB} x {GROK_DIM}", vec_s, loop_s,
                         None, rel, note + " (per-sample loop)"))
    return rows


def _cifar_epoch(gen, num_samples):
    labels = _balanced_labels(num_samples, CIFAR_CLASSES, gen)
    features = _clustered_features(labels, CIFAR_DIM, CIFAR_CLASSES, gen).relu()  # post-ReLU, as ResNet-18's
    weight = torch.randn(CIFAR_CLASSES, CIFAR_DIM, generator=gen) / math.sqrt(CIFAR_DIM)
    bias = 0.1 * torch.randn(CIFAR_CLASSES, generator=gen)
    return features, labels, weight, bias


def bench_epoch_ncc_flatness(epoch, gen, repeats, sample_rows):
    """What the original computes per CIFAR epoch: NCC over the 50k features plus sharpness2."""
    features, labels, weight, bias = epoch
    with torch.no_grad():
        vec_s, vec_ncc = _time_fast(lambda: (ncc(features, labels), relative_flatness_bound(features, weight, bias))[0],
                                    repeats)
        ncc_loop(features[:200], labels[:200])  # warm-up
        ncc_s, loop_ncc = _time_once(lambda: ncc_loop(features, labels))
        rf_s, rf_rel, rf_note = _per_sample_loop(relative_flatness_bound_loop, relative_flatness_bound, features,
                                                 (weight, bias), sample_rows, gen)
    note = f"ncc: measured, full; sharpness2: {rf_note.replace('measured, ', '')} (per-sample loop)"
    return _row("epoch: ncc + relative_flatness_bound", f"{len(features)} x {CIFAR_DIM} f32, {CIFAR_CLASSES} classes, "
                f"W {CIFAR_CLASSES} x {CIFAR_DIM} + b", vec_s, ncc_s + rf_s, None,
                max(_rel_diff(loop_ncc, vec_ncc), rf_rel), note)


def bench_full_metric_set(epoch, repeats):
    features, labels, weight, bias = epoch

    def metric_set():
        return (ncc(features, labels), relative_flatness_bound(features, weight, bias),
                relative_flatness_exact(features, weight, bias), neural_collapse(features, labels, weight, bias),
                class_mean_angles(features, labels))

    with torch.no_grad():
        vec_s, _ = _time_fast(metric_set, repeats)
    return _row("full metric set: ncc, rf bound, rf exact, nc1-nc4, angles",
                f"{len(features)} x {CIFAR_DIM} f32, {CIFAR_CLASSES} classes, W {CIFAR_CLASSES} x {CIFAR_DIM} + b",
                vec_s, None, "< 1 s", None, "n/a (no loop version: NC1-NC4, angles and exact RF are not in "
                "the original code); wall time of all five calls")


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _fmt_time(seconds: float | None, approx: bool = False) -> str:
    if seconds is None:
        return "n/a"
    prefix = "~" if approx else ""
    if seconds < 1e-3:
        return f"{prefix}{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{prefix}{seconds * 1e3:.1f} ms"
    return f"{prefix}{seconds:.2f} s"


def format_table(rows) -> str:
    header = ["metric", "inputs", "`common` (vectorised)", "loop (original)", "loop / vectorised", "target",
              "target met", "max rel. diff", "loop timing"]
    table = []
    for row in rows:
        approx = "extrapolated" in row["loop_note"]
        cells = [row["metric"], row["inputs"], _fmt_time(row["vectorised_s"]), _fmt_time(row["loop_s"], approx),
                 f"{row['speedup']:,.0f}x" if row["speedup"] is not None else "n/a", row["target"] or "-",
                 {True: "yes", False: "no", None: "-"}[row["target_met"]],
                 f"{row['rel_diff']:.1e}" if row["rel_diff"] is not None else "n/a", row["loop_note"]]
        table.append(cells)
    return markdown_table(header, table).rstrip("\n")


@entry_point
def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for every row (default 1)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats of the fast versions, median reported (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller loop subsamples and one repeat: a smoke test of < 20 s")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # before anything is computed: every row runs on this many threads
    try:
        kde_val_points = 2 if args.quick else 50  # of 4705: the loop visits 50 x 4704 pairs
        flatness_rows = 500 if args.quick else None  # None: the per-sample loops visit every sample
        epoch_rows = 2000 if args.quick else None
        epoch_samples = 10_000 if args.quick else CIFAR_TRAIN  # quick: a 10k "epoch", the table shows it
        gen = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        rows = [bench_ncc_grokking(gen, args.repeats),
                bench_representativeness(gen, args.repeats, kde_val_points),
                bench_ncc_regulariser(gen, args.repeats),
                *bench_flatness_grokking(gen, args.repeats, flatness_rows)]
        epoch = _cifar_epoch(gen, epoch_samples)
        rows += [bench_epoch_ncc_flatness(epoch, gen, args.repeats, epoch_rows),
                 bench_full_metric_set(epoch, args.repeats)]
        total = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous_threads)

    print(f"torch {torch.__version__}, numpy {np.__version__}, python {platform.python_version()}")
    print(f"threads: {args.threads} (torch.set_num_threads), repeats: {args.repeats}"
          f"{', quick mode' if args.quick else ''}")
    print(f"CPU: {cpu_model() or 'unknown'} ({platform.machine()})")
    print()
    print(format_table(rows))
    print()
    print("`common`: warm-up, then median of the repeats. Loops: one run, except the regulariser row (median).")
    print("~: extrapolated linearly from the loop timed on a random subsample (see 'loop timing'); the rel. diff "
          "compares loop and `common` on that same subsample.")
    print("representativeness rel. diff: the larger of that of Rep (float32) and that of its KDE term alone (against "
          "`common` in float64); the KDE term is ~1e-4 of Rep because of Petzka's extra 1/|S|.")
    print("relative-flatness loops are per-sample references; the original evaluates sharpness2 vectorised per "
          "mini-batch of 64.")
    print(f"benchmark wall time: {total:.1f} s")
    return rows


if __name__ == "__main__":
    main()
