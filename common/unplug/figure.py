"""Fig. 4 (and the text models' Figs. 16-19) from the run logs of an rf_* experiment: the regularised runs
against the baselines, mean over seeds with the min-max band. The figure is the same for every model, so it
is written once here, and each experiment's plot.py calls it with its train module and title
(`plot_unplug_runs`):

    python -m rf_resnet18.plot --preset cpu --data_dir DIR     # the flags of the training runs
    python -m rf_vit.plot --preset cpu --data_dir DIR --seeds "1 42"
    python -m rf_bert.plot --preset paper                       # Figs. 16-17 (fig16.png)
    python -m rf_bert.plot --preset cpu --out_dir rf_bert/figures/cpu/runs --to rf_bert/figures/cpu

The figure: (a) train and validation accuracy, (b) relative flatness with one fixed definition (Lemma A.2
bound, temperature 1, raw features: eval-mode pass and in-training mean) and the regulariser's own value as
applied (its temperature and feature normalisation), (c) the learning rate; the unplug epoch is the dotted
line. The table: one row per run, accuracies before unplug, the best validation accuracy after it, the final
ones, and the RF values.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..plumbing.cli import UsageError  # noqa: E402
from ..plumbing.tables import markdown_table, run_groups, seed_band, seeds_label  # noqa: E402
from ..plumbing.runlog import load_runs  # noqa: E402

__all__ = ["GROUPS", "load_groups", "unplug_figure", "unplug_summary", "unplug_numbers", "search_table", "figure_from_runs",
           "plot_unplug_runs"]

GROUPS = [  # label, the train.py flags of the group (added to the user's), color
    ("RF regulariser, unplugged", [], "tab:red"),
    ("baseline, same schedule", ["--regularizer", "none", "--baseline_same_schedule"], "tab:blue"),
    ("baseline, original (no schedule change)", ["--regularizer", "none"], "tab:gray"),
]


def load_groups(train, rest, seeds):
    """[(label, color, frame)] for each group with runs on disk, and the unplug epoch."""
    groups, unplug = [], None
    for label, flags, color in GROUPS:
        run = train.parse_args(rest + flags)
        frame = load_runs(run.run_dir.parent)
        frame = frame[frame.seed.isin(seeds)] if not frame.empty else frame
        if not frame.empty:
            groups.append((label, color, frame))
            unplug = run.config["unplug_epoch"]
    if not groups:
        raise UsageError(f"no runs under {train.parse_args(rest).run_dir.parent}; train them first "
                         f"(run_script.sh with the same flags)")
    return groups, unplug


def original_text_log(frame):
    """The value the original text scripts logged as flatness (docs/original_code.md §6.1): the term as applied
    (its temperature, normalised features) while it is on, the same form at temperature 1 otherwise."""
    return frame["train_reg_running"].where(frame["regularised"].astype(bool), frame["train_reg_tau1_running"])


def unplug_figure(groups, unplug, title, losses=False):
    """Fig. 4 (and Figs. 16-19): accuracies, relative flatness (fixed definition) and the regulariser, learning
    rate; with `losses` (the text models) also (d) the training loss as optimised (CE - lambda reg while
    regularised, so it can be negative, as the original's TinyBERT figure) and the validation CE, and in (b)
    the original text scripts' logged value (`original_text_log`). Returns the Figure."""
    fig, axes = plt.subplots(1, 4 if losses else 3, figsize=(24 if losses else 18, 4.8))
    for label, color, frame in groups:
        if losses and "train_reg_tau1_running" in frame:
            frame = frame.assign(original_log=original_text_log(frame))
            seed_band(axes[1], frame, "original_log", f"{label}: the original's logged value", color, x="epoch",
                      linestyle="-.")
        seed_band(axes[0], frame, "train_acc", f"{label}: train", color, x="epoch", linestyle="--", scale=100)
        seed_band(axes[0], frame, "val_acc", f"{label}: validation", color, x="epoch", scale=100)
        seed_band(axes[1], frame, "train_rf_bound", f"{label}: RF bound, eval pass", color, x="epoch")
        seed_band(axes[1], frame, "train_rf_bound_running", f"{label}: RF bound, in-training mean", color, x="epoch",
                  linestyle="--")
        if frame["regularizer"].iloc[0] != "none":
            seed_band(axes[1], frame, "train_reg_running", f"{label}: the regulariser's value (applied until unplug)", color, x="epoch",
                      linestyle=":", linewidth=2.5)
        seed_band(axes[2], frame, "lr", label, color, x="epoch")
        if losses:
            seed_band(axes[3], frame, "train_loss_total", f"{label}: train (as optimised)", color, x="epoch",
                      linestyle="--")
            seed_band(axes[3], frame, "val_loss", f"{label}: validation CE", color, x="epoch")
    axes[0].set(title="(a) accuracy (%)", xlabel="epoch", ylim=(0, 102))
    # A network that predicts one class with certainty has RF ~ 0 (1e-100 and below): keep the axis on the curves.
    top = max(frame[key].max() for _, _, frame in groups for key in ("train_rf_bound", "train_reg_running"))
    axes[1].set(title="(b) relative flatness: fixed definition (tau 1, raw features)\nand the regulariser's own value "
                      "(values below 1e-3 are off the axis)", xlabel="epoch", yscale="log", ylim=(1e-3, 3 * top))
    axes[2].set(title="(c) learning rate", xlabel="epoch", yscale="log")
    if losses:
        axes[3].set(title="(d) losses: train = CE - lambda reg while regularised; validation CE", xlabel="epoch",
                    yscale="symlog")
    for ax in axes:
        ax.axvline(unplug + 0.5, color="black", linestyle=":", linewidth=1)  # epochs are 1-based in the log
        ax.legend(fontsize=7, loc="lower left" if ax is axes[1] else "best")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def unplug_summary(groups, unplug, text=False):
    """Markdown, one row per run: the accuracies just before unplug, the best validation accuracy after it
    (and its epoch), the final accuracies, the RF bound (fixed definition) before unplug and at the end; with
    `text` also the training loss at unplug and the peak of the original text scripts' logged value."""
    rows = []
    for label, _, frame in groups:
        for seed, run in frame.sort_values("epoch").groupby("seed"):
            before, after, last = run[run.epoch == unplug], run[run.epoch > unplug], run.iloc[-1]
            best = after.loc[after.val_acc.idxmax()] if len(after) else last
            at = before.iloc[0] if len(before) else run.iloc[0]
            row = [label, seed, f"{at.train_acc:.3f} / {at.val_acc:.3f}", f"{best.val_acc:.3f} ({best.epoch:.0f})",
                   f"{last.train_acc:.3f} / {last.val_acc:.3f}", f"{at.train_rf_bound:.3g}",
                   f"{at.train_reg_running:.3g}", f"{last.train_rf_bound:.3g}"]
            if text and "train_reg_tau1_running" in run:
                logged = original_text_log(run.reset_index(drop=True))
                peak = logged.idxmax()
                row += [f"{at.train_loss_total:.4g}", f"{logged[peak]:.3g} ({run.epoch.iloc[peak]:.0f})"]
            rows.append(row)
    header = ["run", "seed", f"train / val acc at epoch {unplug} (last regularised)",
              "best val acc after unplug (epoch)", "final train / val acc",
              f"RF bound at epoch {unplug}", f"regulariser at epoch {unplug}", "final RF bound"]
    if text and all(len(row) == len(header) + 2 for row in rows):
        header += [f"train loss at epoch {unplug}", "original's logged value: peak (epoch)"]
    else:
        rows = [row[:len(header)] for row in rows]
    return markdown_table(header, rows)


CLASSES = {"cifar10": 10, "fashion_mnist": 10, "imagenet100": 100}  # K of the image data sets (text: --num_classes)


def unplug_numbers(frame) -> "pd.DataFrame":
    """One row per seed of one run group of an rf_* experiment (its evaluations by epoch; config columns as
    `load_runs` gives them): what REPRODUCTION.md and the READMEs quote. NaN where a run never gets there."""
    import math

    import numpy as np
    import pandas as pd

    rows = {}
    for seed, run in frame.sort_values("epoch").groupby("seed"):
        run = run.reset_index(drop=True)
        first = run.iloc[0]
        unplug = int(first["unplug_epoch"])
        at = lambda epoch, key: float(run.loc[run.epoch == epoch, key].iloc[0]) if (run.epoch == epoch).any() else math.nan  # noqa: E731
        after, on = run[run.epoch > unplug], run[run.epoch <= unplug]
        row = {"unplug": unplug, "epochs": float(run.epoch.iloc[-1]),
               "train acc at unplug": at(unplug, "train_acc"), "val acc at unplug": at(unplug, "val_acc"),
               "train loss at unplug": at(unplug, "train_loss_total") if "train_loss_total" in run else math.nan,
               "train acc 2 epochs after unplug": at(unplug + 2, "train_acc"),
               "final train acc": float(run.train_acc.iloc[-1]), "final val acc": float(run.val_acc.iloc[-1]),
               "best val acc after unplug": float(after.val_acc.max()) if len(after) else math.nan,
               "largest ||W||_F": float(run.w_norm.max()), "final ||W||_F": float(run.w_norm.iloc[-1]),
               "RF bound: lowest": float(run.train_rf_bound.min()), "RF bound: highest": float(run.train_rf_bound.max()),
               "RF bound at unplug": at(unplug, "train_rf_bound"), "final RF bound": float(run.train_rf_bound.iloc[-1]),
               "RF bound: highest in the 5 epochs after unplug":
                   float(after[after.epoch <= unplug + 5].train_rf_bound.max()) if len(after) else math.nan,
               "val acc at epoch 5": at(5, "val_acc"), "val acc 10 epochs after unplug": at(unplug + 10, "val_acc"),
               "best val acc after unplug: epoch": float(after.epoch[after.val_acc.idxmax()]) if len(after) else math.nan}
        if "train_reg_running" in run:
            row["term at unplug"] = at(unplug, "train_reg_running")
            row["final term"] = float(run.train_reg_running.iloc[-1])
        recovered = after[after.train_acc >= 0.99]
        row["train acc >= 0.99 again after unplug: epoch"] = float(recovered.epoch.iloc[0]) if len(recovered) else math.nan
        if bool(first["regularizer"] != "none") and "max_norm" in run:
            classes = int(first["num_classes"]) if "num_classes" in first else CLASSES[first["dataset"]]
            saturation = float(first["max_norm"]) ** 2 * (1 - 1 / classes)
            held = (on.train_reg_running >= 0.99 * saturation).to_numpy()
            # the first epoch from which the term stays at 99% of its saturation value until unplug
            start = len(held) - int(np.argmin(held[::-1])) if not held.all() else 0
            row["saturation"] = saturation
            row["term at 99% of saturation from epoch"] = float(on.epoch.iloc[start]) if start < len(held) else math.nan
            held_on = on.iloc[start:]
            row["val acc while saturated: lowest"] = float(held_on.val_acc.min()) if len(held_on) else math.nan
            row["val acc while saturated: highest"] = float(held_on.val_acc.max()) if len(held_on) else math.nan
        if "train_reg_tau1_running" in run:
            logged = original_text_log(run)
            row["original's logged value: peak"] = float(logged.max())
            row["original's logged value: peak epoch"] = float(run.epoch[logged.idxmax()])
        rows[int(seed)] = row
    return pd.DataFrame(rows).T.sort_index()


def search_table(runs, seed: int, epochs) -> str:
    """Markdown, one row per (label, frame) of `runs` (a group's evaluations by epoch), its run of `seed`: train /
    validation accuracy at each of `epochs` ('not run' past the run's end), and at the unplug epoch the RF bound
    (fixed definition), the regulariser's own value, and the largest ||W||_F until then."""
    rows = []
    for label, frame in runs:
        run = frame[frame.seed == seed].sort_values("epoch")
        unplug = int(run.unplug_epoch.iloc[0])
        at = lambda epoch: run[run.epoch == epoch].iloc[0] if (run.epoch == epoch).any() else None  # noqa: E731
        cells = [f"{row.train_acc:.2f} / {row.val_acc:.2f}" if row is not None else "not run" for row in map(at, epochs)]
        last = at(unplug)
        term = f"{last.train_reg_running:.3g}" if run.regularizer.iloc[0] != "none" else "off"
        rows.append([label, *cells, f"{last.train_rf_bound:.3g}", term,
                     f"{run[run.epoch <= unplug].w_norm.max():.3g}"])
    unplug = int(runs[0][1].unplug_epoch.iloc[0])
    return markdown_table(["run", *(f"train / val acc at epoch {e}" for e in epochs), f"RF bound at epoch {unplug}",
                           f"regulariser at epoch {unplug}", f"largest ‖W‖_F until epoch {unplug}"], rows)


def figure_from_runs(frame, title: str, losses: bool = False):
    """The figure of the run groups of a `load_runs` frame (what `python -m common.plot` draws): each group is
    labelled as the regularised run, the fair baseline or the original's baseline by its config."""
    labelled = []
    for _, rows in run_groups(frame):
        first = rows.iloc[0]
        index = 0 if first["regularizer"] != "none" else 1 if first.get("baseline_same_schedule", False) else 2
        labelled.append((GROUPS[index][0], GROUPS[index][2], rows))
    return unplug_figure(labelled, int(frame["unplug_epoch"].iloc[0]), f"{title} ({seeds_label(frame)})", losses)


def plot_unplug_runs(train, argv, model_name: str, figure: str = "fig4", losses: bool = False):
    """The plot.py of an rf_* experiment: `train` is its train module (parse_args locates the runs), argv the
    train.py flags of the runs plus --seeds. Writes <figure>.png and summary.md to
    <out_dir>/<experiment>/figures/<preset + flags>/ and prints the table; returns that folder."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--seeds", default="1 42 15213", help="the seeds to plot (space-separated)")
    parser.add_argument("--to", default=None, help="write the figure and table here (default: beside the runs)")
    args, rest = parser.parse_known_args(argv)
    seeds = [int(s) for s in args.seeds.split()]
    groups, unplug = load_groups(train, rest, seeds)
    run = train.parse_args(rest)
    out = Path(args.to) if args.to else run.run_dir.parent.parent / "figures" / run.run_dir.parent.name
    out.mkdir(parents=True, exist_ok=True)
    fig = unplug_figure(groups, unplug, f"{model_name}{describe_model(run.config)} ({describe_data(run.config)}, "
                                        f"preset {run.config['preset']}, lambda {run.config['lam']:g}, unplug recipe "
                                        f"{run.config['unplug_recipe']}; mean and min-max over seeds {args.seeds})",
                        losses)
    fig.savefig(out / f"{figure}.png", dpi=110)
    plt.close(fig)
    table = unplug_summary(groups, unplug, text=losses)
    (out / "summary.md").write_text(table)
    print(table + f"\nfigure: {out / f'{figure}.png'}")
    return out


STAND_INS = {  # data sets that stand in for the paper's: what a figure calls them
    "movie_snippets": "movie-review snippets, a stand-in for SST-5, not SST-5",
    "fashion_mnist": "a Fashion-MNIST subset, a stand-in for the paper's data",
}


def describe_data(config: dict) -> str:
    return STAND_INS.get(config["dataset"], config["dataset"])


def describe_model(config: dict) -> str:
    """': <model folder or id>' for the text models, with 'trained from scratch, not pretrained' when so."""
    if "model_name" not in config:
        return ""
    return f": {Path(config['model_name']).name}" + ("" if config.get("pretrained", True) else
                                                      ", trained from scratch, not pretrained")
