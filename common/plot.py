"""Every paper figure from run logs, without Jupyter: one entry point over the experiments' plot functions.

    python -m common.plot runs/grokking_nc_rf/cpu --figure fig1 --out figures/
    python -m common.plot runs/nc_experiments/cpu --figure fig2      # each run group under RUNS_DIR is one line
    python -m common.plot runs/rf_resnet18 --figure fig4
    python -m common.plot runs/grokking_nc_rf/cpu --figure signals   # the related papers' signals on one axis

RUNS_DIR holds run folders (seed_<k>/ with metrics.jsonl) at any depth; the folder directly above each
seed_<k> is its run group. Figures (the paper's numbering): fig1 and fig8 (+ fig1_panels, fig8_kde_terms)
from grokking runs; fig2, fig3, fig5, fig6, fig7 from nc_experiments runs (train side: the original's
in-training values, as the paper plots); fig4 from rf_resnet18 or rf_vit runs; fig16 (rf_bert) and fig18
(rf_gpt2): the same panels and the losses; anti_grokking; signals:
validation accuracy, relative flatness, NCC, NC1, representativeness and HTSR alpha of any run group, each
scaled to [0, 1] over its run, with the onsets of common.analysis marked. Writes <out>/<figure>.png
(default out: RUNS_DIR/figures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .analysis import REFERENCE, Event, onsets, runs_under  # noqa: E402
from .cli import UsageError, entry_point  # noqa: E402

FIGURES = ("fig1", "fig1_panels", "fig8", "fig8_kde_terms", "fig2", "fig3", "fig5", "fig6", "fig7", "fig4",
           "fig16", "fig18", "anti_grokking", "signals")

# The signals of the three papers (flatness: this paper; NC1: Sakamoto et al.; HTSR alpha: Prakash & Martin),
# each drawn where logged; the first key of a signal that a run logged is used.
SIGNALS = [("validation accuracy", ["val_acc"], "black"),
           ("relative flatness (Fig. 1's curve, else the bound)", ["train_rf_original_running", "train_rf_bound"], "tab:red"),
           ("NCC", ["train_ncc_running", "train_ncc"], "tab:purple"),
           ("NC1", ["train_nc1"], "tab:blue"),
           ("representativeness", ["representativeness"], "tab:orange"),
           ("HTSR alpha (mean over layers)", ["alpha_mean"], "tab:green")]


def groups_of(frame) -> list[tuple[str, object]]:
    """[(run group, its rows)] in folder order."""
    frame = frame.assign(group=frame["run_dir"].map(lambda p: str(Path(p).parent)))
    return [(group, rows) for group, rows in frame.groupby("group", sort=True)]


def signals_figure(frame, title: str, root: Path = Path(".")):
    """One panel per run group: each signal scaled to [0, 1] over its run (mean over seeds), with a marker at
    its extremum of interest (common.analysis, running median of 3) and the val_acc rise as a dotted line."""
    groups = groups_of(frame)
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 4.2 * len(groups)), squeeze=False)
    for ax, (group, rows) in zip(axes[:, 0], groups):
        mean = rows[rows.step > 0].groupby("step").mean(numeric_only=True)
        for label, keys, color in SIGNALS:
            key = next((k for k in keys if k in mean and mean[k].notna().any()), None)
            if key is None:
                continue
            values = mean[key].to_numpy(dtype=float)
            low, high = np.nanmin(values), np.nanmax(values)
            scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
            ax.plot(mean.index, scaled, color=color, label=f"{label} [{key}: {low:.3g} .. {high:.3g}]")
            kind = "max" if key in ("val_acc",) or "rf" in key else "min"
            at = onsets(mean.reset_index(), [Event("extremum", key, kind)])["extremum"]
            if np.isfinite(at):
                ax.plot([at], [np.interp(at, mean.index, scaled)], "o", color=color)
        rise = onsets(mean.reset_index(), [])[REFERENCE.name]
        if np.isfinite(rise):
            ax.axvline(rise, color="black", linestyle=":", linewidth=1, label="val_acc rise (half-way)")
        ax.set(xscale="log", xlabel="optimization step", ylabel="scaled to [0, 1] over the run (mean over seeds)",
               title=f"{root.name if group == '.' else group}: markers at each signal's peak (accuracy, flatness) "
                     f"or lowest value")
        ax.legend(fontsize=7, loc="center left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _band(frame):
    seeds = frame["seed"].nunique()
    return f"mean and min-max over {seeds} seeds" if seeds > 1 else f"seed {frame['seed'].iloc[0]}"


def make_figure(name: str, frame, root: Path):
    """The Figure `name` from the rows of every run under `root`."""
    if name in ("fig1", "fig1_panels", "fig8", "fig8_kde_terms"):
        from grokking_nc_rf import plot
        band = _band(frame)
        return {"fig1": lambda: plot.fig1(frame, band), "fig8": lambda: plot.fig8(frame, band),
                "fig1_panels": lambda: plot.panels(frame), "fig8_kde_terms": lambda: plot.kde_terms(frame, band)}[name]()
    if name in ("fig2", "fig3", "fig5", "fig6", "fig7"):
        from nc_experiments import plot
        groups = [(plot._label(rows), plot.select_values(rows, "running", root / group)) for group, rows in groups_of(frame)]
        if name in ("fig6", "fig7"):
            return plot.fig_rows(groups, name)
        return {"fig2": plot.fig2, "fig3": plot.fig3, "fig5": plot.fig5}[name](groups)
    if name in ("fig4", "fig16", "fig18"):
        from .unplug_plots import GROUPS, unplug_figure
        labelled = []
        for _, rows in groups_of(frame):
            first = rows.iloc[0]
            index = 0 if first["regularizer"] != "none" else 1 if first.get("baseline_same_schedule", False) else 2
            labelled.append((GROUPS[index][0], GROUPS[index][2], rows))
        title = {"fig4": "Fig. 4", "fig16": "Figs. 16-17 (BERT)", "fig18": "Figs. 18-19 (DistilGPT-2)"}[name]
        return unplug_figure(labelled, int(frame["unplug_epoch"].iloc[0]), f"{title} from {root} ({_band(frame)})",
                             losses=name != "fig4")
    if name == "anti_grokking":
        from anti_grokking import plot
        groups = [(f"weight decay {rows['weight_decay'].iloc[0]:g}", rows, "-" if rows["weight_decay"].iloc[0] > 0 else "--")
                  for _, rows in groups_of(frame)]
        return plot.figure(groups, f"Anti-grokking setting from {root}: solid with weight decay, dashed without")
    return signals_figure(frame, f"The signals of the three papers on one step axis ({root})", root)


REQUIRED = {"fig1": "train_rf_original_running", "fig8": "representativeness", "fig2": "train_ncc", "fig4": "unplug_epoch",
            "anti_grokking": "alpha_mean", "signals": "val_acc"}
REQUIRED.update(fig16=REQUIRED["fig4"], fig18=REQUIRED["fig4"], fig1_panels=REQUIRED["fig1"], fig8_kde_terms=REQUIRED["fig8"], fig3="train_angles", fig5="train_loss_total",
                fig6="train_ncc", fig7="train_ncc")


@entry_point
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m common.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", help="a folder holding run folders (any depth)")
    parser.add_argument("--figure", required=True, choices=FIGURES)
    parser.add_argument("--out", default=None, help="where the PNG goes (default: RUNS_DIR/figures)")
    args = parser.parse_args(argv)
    root = Path(args.runs_dir)
    frame = runs_under(root)
    if REQUIRED[args.figure] not in frame:
        raise UsageError(f"the runs under {root} have no {REQUIRED[args.figure]}: --figure {args.figure} needs runs of "
                         f"the experiment that draws it")
    out = Path(args.out) if args.out else root / "figures"
    out.mkdir(parents=True, exist_ok=True)
    fig = make_figure(args.figure, frame, root)
    path = out / f"{args.figure}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(path)
    return path


if __name__ == "__main__":
    main()
