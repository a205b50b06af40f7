"""Every figure from run logs, without Jupyter: one entry point over the figures the experiments offer.

    python -m common.plot runs/grokking_nc_rf/cpu --figure fig1 --out figures/
    python -m common.plot runs/nc_experiments/cpu --figure fig2      # each run group under RUNS_DIR is one line
    python -m common.plot runs/rf_resnet18 --figure fig4
    python -m common.plot runs/grokking_nc_rf/cpu --figure signals   # the related papers' signals on one axis

RUNS_DIR holds run folders (seed_<k>/ with metrics.jsonl) at any depth; the folder directly above each
seed_<k> is its run group. Each run's config.json names its experiment (older logs: the folder of the
program in argv), and the experiment's plot module declares the figures it offers in `FIGURES` (name ->
function of the runs' rows and RUNS_DIR), as Hugging Face's AutoModel finds a model's code from its
config: the library holds the mechanism, the experiments hold their figures, and a new experiment folder
adds its figures without touching `common/`. The paper's figures: fig1, fig1_panels, fig8, fig8_kde_terms
(grokking_nc_rf); fig2, fig3, fig5, fig6, fig7 (nc_experiments, train side as the paper plots); fig4
(rf_resnet18, rf_vit); fig16 (rf_bert), fig18 (rf_gpt2); anti_grokking (anti_grokking). Offered for any
runs: signals, validation accuracy, relative flatness, NCC, NC1, representativeness and HTSR alpha, each
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

from .analysis import REFERENCE, Event, declared, experiments_in, onsets, runs_under  # noqa: E402
from .plumbing.cli import UsageError, entry_point  # noqa: E402
from .plumbing.tables import run_groups  # noqa: E402

__all__ = ["signals_figure", "figures_of", "make_figure", "main"]

# The signals of the papers that argue about grokking's timing, each drawn where logged with a mark at its
# extremum of interest (None: no mark); the first key of a signal that a run logged is used. Each is named by
# whose quantity it is: flatness and NCC (this paper), Papyan et al.'s NC1, Sakamoto et al.'s within-class
# variance and trace-ratio NC1 on held-out data, Nanda et al.'s restricted and excluded losses, HTSR alpha
# (Prakash & Martin).
SIGNALS = [("validation accuracy", ["val_acc"], "black", "max"),
           ("relative flatness (Fig. 1's curve, else the bound)", ["train_rf_original_running", "train_rf_bound"],
            "tab:red", "max"),
           ("NCC", ["train_ncc_running", "train_ncc"], "tab:purple", "min"),
           ("NC1 (Papyan et al., train)", ["train_nc1"], "tab:blue", "min"),
           ("within-class variance (Sakamoto et al., val)", ["val_wcv"], "tab:cyan", "max"),
           ("NC1 trace ratio (Sakamoto et al., val)", ["val_nc1_trace"], "navy", "min"),
           ("restricted loss (Nanda et al., val)", ["val_restricted_loss"], "tab:brown", "min"),
           ("excluded loss (Nanda et al., train)", ["train_excluded_loss"], "tab:pink", None),  # its peak: an onset event
           ("representativeness", ["representativeness"], "tab:orange", "min"),
           ("HTSR alpha (mean over layers)", ["alpha_mean"], "tab:green", "min")]


def signals_figure(frame, title: str, root: Path = Path(".")):
    """One panel per run group: each signal scaled to [0, 1] over its run (mean over seeds), with a marker at
    its extremum of interest (common.analysis, running median of 3) and the val_acc rise as a dotted line."""
    groups = run_groups(frame)
    fig, axes = plt.subplots(len(groups), 1, figsize=(14, 4.6 * len(groups)), squeeze=False)
    for ax, (group, rows) in zip(axes[:, 0], groups):
        mean = rows[rows.step > 0].groupby("step").mean(numeric_only=True)
        for label, keys, color, kind in SIGNALS:
            key = next((k for k in keys if k in mean and mean[k].notna().any()), None)
            if key is None:
                continue
            values = mean[key].to_numpy(dtype=float)
            low, high = np.nanmin(values), np.nanmax(values)
            scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
            ax.plot(mean.index, scaled, color=color, label=f"{label} [{key}: {low:.3g} .. {high:.3g}]")
            at = onsets(mean.reset_index(), [Event("extremum", key, kind)])["extremum"] if kind else np.nan
            if np.isfinite(at):
                ax.plot([at], [np.interp(at, mean.index, scaled)], "o", color=color)
        rise = onsets(mean.reset_index(), [])[REFERENCE.name]
        if np.isfinite(rise):
            ax.axvline(rise, color="black", linestyle=":", linewidth=1, label="val_acc rise (half-way)")
        ax.set(xscale="log", xlabel="optimization step", ylabel="scaled to [0, 1] over the run (mean over seeds)",
               title=f"{root.name if group == '.' else group}: markers at each signal's extremum of interest "
                     f"(its peak or lowest value)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle(title)
    height = fig.get_figheight()  # the axes on the left, their legends to the right of them
    fig.subplots_adjust(left=0.06, right=0.6, top=1 - 0.75 / height, bottom=0.6 / height, hspace=0.45)
    return fig


def figures_of(frame) -> dict:
    """{figure name: function(rows, RUNS_DIR) -> Figure} that the runs of `frame` offer: `signals` for any
    runs, and the `FIGURES` of each of their experiments' plot module (<experiment>/plot.py)."""
    offered = {"signals": lambda rows, root: signals_figure(
        rows, f"The signals of the papers on grokking on one step axis ({root})", root)}
    for experiment in experiments_in(frame):  # an experiment without a plot module or FIGURES: signals only
        for name, draw in declared(experiment, "FIGURES", {}).items():
            if name in offered:
                raise UsageError(f"figure {name} is offered by two experiments of the runs; give a folder that "
                                 f"holds the runs of one")
            offered[name] = _of_experiment(draw, experiment)
    return offered


def _of_experiment(draw, experiment: str):
    """`draw` on the rows of `experiment`'s runs alone."""
    return lambda frame, root: draw(frame[frame["experiment"] == experiment], root)


def make_figure(name: str, frame, root: Path):
    """The Figure `name` from the rows of every run under `root` (the function its experiment offers)."""
    offered = figures_of(frame)
    if name not in offered:
        experiments = ", ".join(experiments_in(frame)) or "unknown"
        raise UsageError(f"the runs under {root} (experiment: {experiments}) offer no figure {name}; "
                         f"--figure must be one of: {', '.join(sorted(offered))}")
    return offered[name](frame, root)


@entry_point
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m common.plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", help="a folder holding run folders (any depth)")
    parser.add_argument("--figure", required=True, help="a figure the runs' experiment offers (its plot.py's "
                        "FIGURES, e.g. fig1, fig2, fig4) or signals")
    parser.add_argument("--out", default=None, help="where the PNG goes (default: RUNS_DIR/figures)")
    args = parser.parse_args(argv)
    root = Path(args.runs_dir)
    frame = runs_under(root)
    fig = make_figure(args.figure, frame, root)
    out = Path(args.out) if args.out else root / "figures"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.figure}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(path)
    return path


if __name__ == "__main__":
    main()
