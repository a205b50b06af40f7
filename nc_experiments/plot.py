"""Figs. 2, 3, 5, 6, 7 from the run logs: one line (mean over seeds, min-max band) per run group.

    python -m nc_experiments.plot fig2 --preset cpu --data_dir DIR      # same flags as the training runs
    python -m nc_experiments.plot fig6 --list_runs --preset cpu         # the runs a figure needs

figure_runs() lists, for each figure, the training runs (seeds, lambdas, regulariser, augmentation)
that run_script.sh trains and this script plots; train.py's flags locate their run folders. Each run
group (its seed_<k>/ runs) is one line, labelled by its regulariser and lambda. fig2 writes fig2.png
(accuracies, RF bound, NCC), fig3.png (pairwise class-mean angles at the last epoch against the
simplex angle) and fig5.png (losses); fig6 and fig7 write one row per lambda with accuracies, RF
bound, NCC and losses, the baseline of the same setting in grey in every row. Figures go to
<out_dir>/nc_experiments/figures/<preset>/. The train side is the original's in-training epoch values
(runs trained with --running_metrics, as run_script.sh does), as the paper plots; --values eval draws
the eval-mode pass after each epoch instead (*_eval.png).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common import UsageError, entry_point, load_runs, markdown_table, seed_band  # noqa: E402
from common.plumbing.tables import run_groups  # noqa: E402
from nc_experiments import train  # noqa: E402

SEEDS = ("1", "42", "15213")  # App. B
# The paper's lambdas; the CPU preset's ~80x smaller step budget needs ~30x larger ones (README).
LAMBDAS = {"paper": {"fig6": ["1e-2", "1e-3", "1e-4", "1e-5", "1e-6"], "fig7": ["1e-2", "1e-3", "1e-4"],
                     "fig2": "1e-3"},
           "cpu": {"fig6": ["1e-1", "3e-2", "3e-3", "3e-4", "3e-5"], "fig7": ["1e-1", "3e-2", "3e-3"], "fig2": "3e-2"}}


def figure_runs(figure: str, preset: str) -> list[list[str]]:
    """The train.py flags of every run a figure needs (added to the user's flags)."""
    lams = LAMBDAS[preset]
    if figure == "fig2":
        return [["--seed", s, "--regularizer", r, "--lam", lams["fig2"]] for r in ("none", "ncc") for s in SEEDS]
    extra = ["--augment", "--cifar_stem"] if figure == "fig7" else []
    # Seed 42 per lambda (the paper's rows), and the baseline of the same setting drawn in every row.
    return [["--seed", "42", "--lam", lam, *extra] for lam in lams[figure]] + \
        [["--seed", "42", "--regularizer", "none", *extra]]


# --values running (default): the original's epoch values, which the paper's figures plot (train-mode
# features of the epoch's steps, each with the parameters of its step; docs/original_code.md §3.2);
# --values eval: one eval-mode pass after the epoch. Validation values are eval-mode in both.
RUNNING = {"train_acc": "train_acc_running", "train_ncc": "train_ncc_running",
           "train_rf_bound": "train_rf_bound_running", "train_angles": "train_angles_running"}


def select_values(frame, values, folder):
    """The frame with the train-side columns replaced by the chosen kind of values."""
    if values == "eval":
        return frame
    missing = [k for k in RUNNING.values() if k not in frame or frame[k].isna().any()]
    if missing:
        raise UsageError(f"runs under {folder} have no {missing[0]} (trained without --running_metrics); retrain "
                         f"them through nc_experiments/run_script.sh, or plot the eval-mode values with --values eval")
    return frame.assign(**{key: frame[running] for key, running in RUNNING.items()})


COLORS = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown"]


def _label(frame):
    first = frame.iloc[0]
    augment = ", augment" if first.get("augment", False) else ""
    if first["regularizer"] == "none":
        return "baseline" + augment
    return f"REG (lambda={first['lam']:g})" + augment


def _panel(ax, groups, keys, title, yscale="linear", colors=COLORS):
    """One line per run group and key (solid, then dashed): the mean over seeds with the min-max band."""
    for (label, frame), color in zip(groups, colors):
        for key, style in zip(keys, ["-", "--"]):
            seed_band(ax, frame, key, f"{label} {key}", color, x="epoch", alpha=0.15, linestyle=style)
    ax.set(title=title, xlabel="epoch", yscale=yscale)
    ax.legend(fontsize=7)


def _values_note(suffix):
    return "train side: eval-mode pass after each epoch" if suffix else \
        "train side: the original's in-training epoch means, as the paper plots"


def fig2(groups, suffix=""):
    """Fig. 2: accuracies, RF bound and NCC of each run group. Returns the Figure."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    fig.suptitle(f"Fig. 2 ({_values_note(suffix)})")
    _panel(axes[0], groups, ["train_acc", "val_acc"], "(a) accuracy (solid: train, dashed: validation)")
    _panel(axes[1], groups, ["train_rf_bound"], "(b) relative flatness (Lemma A.2 bound)", "log")
    _panel(axes[2], groups, ["train_ncc"], "(c) NCC (train)", "log")
    fig.tight_layout()
    return fig


def fig3(groups, suffix=""):
    """Fig. 3: the pairwise class-mean angles at the last epoch, one line per seed, against the simplex angle."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (label, frame), color in zip(groups, COLORS):
        last = frame[frame.epoch == frame.epoch.max()]
        for k, angles in enumerate(last["train_angles"]):  # one line per seed: a mean would hide the spread
            ax.plot(np.arange(len(angles)), angles, "o-", color=color, markersize=3, linewidth=0.8, alpha=0.7,
                    label=f"{label} ({len(last)} seeds)" if k == 0 else None)
    ax.axhline(groups[0][1]["simplex_angle"].iloc[0], color="black", linestyle=":", label="simplex angle")
    ax.set(title=f"Fig. 3: pairwise class-mean angles at the last epoch\n({_values_note(suffix)})", xlabel="class pair",
           ylabel="degrees")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig5(groups, suffix=""):
    """Fig. 5: the training loss as the original logs it (CE - lambda NCC) and the validation CE."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _panel(ax, groups, ["train_loss_total", "val_loss"],
           "Fig. 5: losses (solid: train, CE - lambda NCC as logged by the original; dashed: validation CE)")
    fig.tight_layout()
    return fig


def fig_rows(groups, name, suffix=""):
    """Figs. 6, 7: one row per lambda (accuracies, RF bound, NCC, losses), the baseline in grey in each.
    Returns the Figure."""
    baseline = [(label, frame) for label, frame in groups if frame["regularizer"].iloc[0] == "none"]
    regularised = [(label, frame) for label, frame in groups if frame["regularizer"].iloc[0] != "none"]
    fig, axes = plt.subplots(len(regularised), 4, figsize=(18, 3.4 * len(regularised)), squeeze=False)
    for row, ((label, frame), color) in zip(axes, zip(regularised, COLORS[1:])):
        for ax, keys, title, yscale in zip(row, [["train_acc", "val_acc"], ["train_rf_bound"], ["train_ncc"],
                                                 ["train_loss_total", "val_loss"]],
                                           ["accuracy", "RF bound", "NCC", "losses"], ["linear", "log", "log", "linear"]):
            _panel(ax, [*baseline, (label, frame)], keys, f"{label}: {title}", yscale,
                   colors=["tab:gray"] * len(baseline) + [color])
    fig.suptitle(f"{name.replace('fig', 'Fig. ')} ({_values_note(suffix)})")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title
    return fig


def summary(groups):
    """Markdown table, one row per run: final accuracies, NCC minimum and final value, final RF bound,
    and the lowest train accuracy after epoch 10 (a collapse shows there)."""
    rows = []
    for label, frame in groups:
        for seed, run in frame.sort_values("epoch").groupby("seed"):
            last, late = run.iloc[-1], run[run.epoch > 10]
            low = late.loc[late.train_acc.idxmin()] if len(late) else last
            ncc_min = run.loc[run.train_ncc.idxmin()]
            rows.append([label, seed, f"{last.train_acc:.3f} / {last.val_acc:.3f}", f"{low.train_acc:.3f} ({low.epoch:.0f})",
                         f"{ncc_min.train_ncc:.3g} ({ncc_min.epoch:.0f})", f"{last.train_ncc:.3g}", f"{last.train_rf_bound:.3g}",
                         f"{np.mean(np.abs(np.subtract(last.train_angles, last.simplex_angle))):.1f}, "
                         f"{np.min(last.train_angles):.1f}-{np.max(last.train_angles):.1f}"])
    return markdown_table(["run", "seed", "final train / val acc", "lowest train acc after epoch 10 (epoch)",
                           "train NCC: minimum (epoch)", "final train NCC", "final RF bound",
                           "final class-mean angles: mean abs. deviation from the simplex angle, min-max (deg)"], rows)


def _from_runs(name):
    """Figure `name` of every run group under a folder (`python -m common.plot`), train side as the paper plots."""
    def draw(frame, root):
        groups = [(_label(rows), select_values(rows, "running", root / group)) for group, rows in run_groups(frame)]
        return fig_rows(groups, name) if name in ("fig6", "fig7") else {"fig2": fig2, "fig3": fig3, "fig5": fig5}[name](groups)
    return draw


# python -m common.plot RUNS --figure NAME: the figures of these runs, from (the runs' rows, RUNS)
FIGURES = {name: _from_runs(name) for name in ("fig2", "fig3", "fig5", "fig6", "fig7")}


@entry_point
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nc_experiments.plot")
    parser.add_argument("figure", choices=["fig2", "fig6", "fig7"])
    parser.add_argument("--list_runs", action="store_true", help="print the train.py flags of each run and exit")
    parser.add_argument("--values", choices=["running", "eval"], default="running",
                        help="train-side values: the original's in-training epoch values, as the paper plots "
                             "(default), or an eval-mode pass after each epoch (figures named *_eval.png)")
    args, rest = parser.parse_known_args(argv)
    rest = [a for a in rest if a != "--no_progress"]
    preset = train.parse_args(rest).config["preset"]
    runs = figure_runs(args.figure, preset)
    if args.list_runs:
        print("\n".join(" ".join(flags) for flags in runs))
        return runs
    seeds_in = {}  # run-group folder -> the seeds this figure takes from it (fig6 uses seed 42 of fig2's runs)
    for flags in runs:
        _, config, run_dir, _ = train.parse_args(rest + flags)
        seeds_in.setdefault(run_dir.parent, []).append(config["seed"])
        if not (run_dir / "finished.json").exists():
            print(f"note: {run_dir} is not finished; plotting what is there")
    groups = []
    for folder, seeds in seeds_in.items():
        frame = load_runs(folder)
        frame = frame[frame.seed.isin(seeds)] if not frame.empty else frame
        if frame.empty:
            raise UsageError(f"no runs under {folder}; train them first: sh nc_experiments/run_script.sh "
                             f"{args.figure} {' '.join(rest)}")
        groups.append((_label(frame), select_values(frame, args.values, folder)))
    out = next(iter(seeds_in)).parent / "figures" / preset
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.values == "running" else "_eval"
    if args.figure == "fig2":
        made = {"fig2": fig2(groups, suffix), "fig3": fig3(groups, suffix), "fig5": fig5(groups, suffix)}
    else:
        made = {args.figure: fig_rows(groups, args.figure, suffix)}
    for name, fig in made.items():
        fig.savefig(out / f"{name}{suffix}.png", dpi=110 if args.figure == "fig2" else 100)
        plt.close(fig)
    print(f"train-side values: {'in-training epoch means (as the paper)' if suffix == '' else 'eval-mode pass'}")
    print(summary(groups))
    print(f"{args.figure}: figures in {out}")
    return out


if __name__ == "__main__":
    main()
