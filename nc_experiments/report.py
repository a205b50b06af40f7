"""The Figs. 2, 3 and 5 table of REPRODUCTION.md, from the committed CPU-preset logs (ResNet-18 on a 1,000-image
Fashion-MNIST subset, a stand-in for CIFAR-10: not CIFAR-10). Train-side values are the original's in-training
epoch values (`*_running`), as the paper plots them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.report import Report, check_table, fixed, number, per_seed, value_range

RUNS = "nc_experiments/figures/cpu/runs/nc_experiments"
BASELINE, REG = f"{RUNS}/cpu_regularizernone", f"{RUNS}/cpu"
COMMANDS = {path: "sh nc_experiments/run_script.sh fig2 --preset cpu --data_dir DIR" for path in (BASELINE, REG)}


def numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per seed: the values the table quotes (last epoch unless named otherwise)."""
    rows = {}
    for seed, run in frame.sort_values("epoch").groupby("seed"):
        run = run.reset_index(drop=True)
        last = run.iloc[-1]
        rows[int(seed)] = {
            "epochs": last.epoch, "val acc": last.val_acc, "train acc (in-training)": last.train_acc_running,
            "RF bound (in-training)": last.train_rf_bound_running, "RF bound (eval pass)": last.train_rf_bound,
            "NCC (in-training)": last.train_ncc_running,
            "NCC (in-training): lowest epoch": run.epoch[run.train_ncc_running.idxmin()],
            "angles: mean abs. deviation from the simplex angle": float(np.mean(np.abs(
                np.subtract(last.train_angles_running, last.simplex_angle)))),
            "simplex angle": last.simplex_angle, "train loss (logged)": last.train_loss_total,
            "minutes": (run.train_s.sum() + run.eval_s.sum()) / 60}
    return pd.DataFrame(rows).T.sort_index()


def numbers_of(report: Report, path: str) -> pd.DataFrame:
    return report.numbers(path, _numbers)


def _numbers(group) -> pd.DataFrame:
    return numbers(group.frame)


def fig2(report: Report) -> str:
    """Figs. 2, 3, 5: the paper's checks beside ours (seeds 1 / 42 / 15213)."""
    b, r = numbers_of(report, BASELINE), numbers_of(report, REG)
    gap = (r["val acc"] - b["val acc"]).abs() * 100
    ratio = r["RF bound (in-training)"] / b["RF bound (in-training)"]
    rows = [
        ("validation accuracy at the end, no augmentation", "val_acc",
         f"baseline {fixed(b['val acc'])}; REG {fixed(r['val acc'])} (epoch {number(b['epochs'].iloc[0])})"),
        ("REG leaves train and validation accuracy unaffected (Fig. 2a)", "accuracy",
         f"train accuracy {value_range(100 * pd.concat([b['train acc (in-training)'], r['train acc (in-training)']]))}% "
         f"at the end of every run; validation within {value_range(gap, 2)} points of the same seed's baseline"),
        ("REG leaves relative flatness (RF bound) with the baseline (Fig. 2b)", "flatness",
         f"final RF bound {per_seed(r['RF bound (in-training)'])} against {per_seed(b['RF bound (in-training)'])} "
         f"({value_range(ratio, 2)}x); eval-mode pass: {per_seed(r['RF bound (eval pass)'], 2)} against "
         f"{per_seed(b['RF bound (eval pass)'], 2)}"),
        ("REG: NCC drops briefly, then rises steadily (Fig. 2c)", "ncc",
         f"lowest at epochs {per_seed(r['NCC (in-training): lowest epoch'])}; final NCC {per_seed(r['NCC (in-training)'])} "
         f"against the baseline's {per_seed(b['NCC (in-training)'])}"),
        ("class-mean angles near the simplex angle without REG, drifting under REG (Fig. 3)", "angles",
         f"mean abs. deviation from {number(b['simplex angle'].iloc[0], 4)}° at the end: "
         f"{per_seed(b['angles: mean abs. deviation from the simplex angle'], 2)}° (baseline), "
         f"{per_seed(r['angles: mean abs. deviation from the simplex angle'], 2)}° (REG)"),
        ("the logged training loss includes −λ·NCC (Fig. 5)", "loss",
         f"REG's ends at {per_seed(r['train loss (logged)'], 2)}"),
        ("time per run", "time",
         f"{value_range(pd.concat([b['minutes'], r['minutes']]), 2)} min for {number(b['epochs'].iloc[0])} epochs "
         f"at one thread on a 2-core CPU shared with other runs (`train_s` + `eval_s`)"),
    ]
    return check_table(report, "nc_experiments", ["ours: Fashion-MNIST subset (not CIFAR-10), seeds 1 / 42 / 15213"], rows,
                       [("Baselines", BASELINE), ("REG (λ 3e-2)", REG)], COMMANDS)


# Fig. 6: seed 42 of every CPU lambda (the paper's x10 / x30), the same seed's baseline and lambda 3e-2 from Fig. 2.
FIG6 = {"1e-1": f"{RUNS}/cpu_lam0.1", "3e-2": REG, "3e-3": f"{RUNS}/cpu_lam0.003", "3e-4": f"{RUNS}/cpu_lam0.0003",
        "3e-5": f"{RUNS}/cpu_lam3e-05"}
COMMANDS.update({path: "sh nc_experiments/run_script.sh fig6 --preset cpu --data_dir DIR" for path in FIG6.values()
                 if path != REG})


def _seed42(report: Report, path: str) -> pd.Series:
    return numbers_of(report, path).loc[42]


def fig6(report: Report) -> str:
    """Fig. 6: the lambda ablation on seed 42 against the same seed's baseline."""
    b = _seed42(report, BASELINE)
    runs = {lam: _seed42(report, path) for lam, path in FIG6.items()}
    group = report.group(FIG6["1e-1"])
    run = group.frame.sort_values("epoch")
    late = run[run.epoch > 10]
    fall = late[late.train_acc_running < 0.9]
    small = [runs[lam] for lam in ("3e-3", "3e-4", "3e-5")]
    ncc_gap = max(abs(r["NCC (in-training)"] / b["NCC (in-training)"] - 1) for r in small) * 100
    rf_gap = max(abs(r["RF bound (in-training)"] / b["RF bound (in-training)"] - 1) for r in small) * 100
    big = runs["1e-1"]
    small_val = " / ".join(f"{r['val acc']:.3f}" for r in small)
    rows = [
        ("largest λ (paper 1e-2, ours 1e-1) unstable", "fig6_unstable",
         f"train accuracy first below 90% after epoch 10 at epoch "
         f"{number(fall.epoch.iloc[0]) if len(fall) else 'never'}; at epoch {number(big['epochs'])} train "
         f"{big['train acc (in-training)']:.3f}, validation {big['val acc']:.3f}"),
        ("λ = 1e-3 (ours 3e-2) raises NCC without hurting accuracy", "fig6_middle",
         f"final NCC {number(runs['3e-2']['NCC (in-training)'])} against {number(b['NCC (in-training)'])}, validation "
         f"{runs['3e-2']['val acc']:.3f} against {b['val acc']:.3f}"),
        ("λ <= 1e-4 (ours <= 3e-3) negligible", "fig6_small",
         f"final NCC within {ncc_gap:.0f}% and RF bound within {rf_gap:.0f}% of the baseline's; validation "
         f"{small_val} against {b['val acc']:.3f}"),
    ]
    return check_table(report, "nc_experiments", ["ours: seed 42, λ x10 / x30 (Fashion-MNIST subset)"], rows,
                       [(f"λ {lam}", path) for lam, path in FIG6.items()] + [("baseline", BASELINE)], COMMANDS)


# Fig. 7: seed 42 with augmentation (the CPU preset has the CIFAR stem in every run).
FIG7 = {"1e-1": f"{RUNS}/cpu_augmentTrue_lam0.1", "3e-2": f"{RUNS}/cpu_augmentTrue",
        "3e-3": f"{RUNS}/cpu_augmentTrue_lam0.003", "baseline": f"{RUNS}/cpu_augmentTrue_regularizernone"}
COMMANDS.update({path: "sh nc_experiments/run_script.sh fig7 --preset cpu --data_dir DIR" for path in FIG7.values()})


def fig7(report: Report) -> str:
    """Fig. 7: augmentation, seed 42, against the augmented baseline (and Fig. 2's runs without augmentation)."""
    runs = {name: _seed42(report, path) for name, path in FIG7.items()}
    plain_b, plain_r = _seed42(report, BASELINE), _seed42(report, REG)
    base = runs["baseline"]
    unstable = report.group(FIG7["1e-1"]).frame.sort_values("epoch")
    rows = [
        ("validation accuracy with augmentation (and the CIFAR stem)", "fig7_val",
         f"baseline {base['val acc']:.3f} at the end (without augmentation {plain_b['val acc']:.3f})"),
        ("λ = 1e-3 (ours 3e-2) no longer raises NCC", "fig7_middle",
         f"final NCC {number(runs['3e-2']['NCC (in-training)'])} against the augmented baseline's "
         f"{number(base['NCC (in-training)'])} (without augmentation the same λ gives "
         f"{number(plain_r['NCC (in-training)'])} against {number(plain_b['NCC (in-training)'])})"),
        ("λ = 1e-2 (ours 1e-1) unstable", "fig7_unstable",
         f"train accuracy at most {unstable.train_acc_running.max():.3f} in any epoch, final validation "
         f"{runs['1e-1']['val acc']:.3f}"),
        ("λ = 1e-4 (ours 3e-3): NCC stays low", "fig7_small",
         f"final NCC {number(runs['3e-3']['NCC (in-training)'])} against {number(base['NCC (in-training)'])}"),
    ]
    return check_table(report, "nc_experiments", ["ours: seed 42, augmentation, λ x10 / x30 (Fashion-MNIST subset)"],
                       rows, [(f"λ {name}" if name != "baseline" else name, path) for name, path in FIG7.items()]
                       + [("without augmentation", BASELINE)], COMMANDS)


FIGURES = [["nc_experiments.plot", figure, "--preset", "cpu", "--out_dir", "nc_experiments/figures/cpu/runs"]
           for figure in ("fig2", "fig6", "fig7")]
TABLES = {"fig2": fig2, "fig6": fig6, "fig7": fig7}
