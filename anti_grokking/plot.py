"""The anti-grokking figure and onset table from the runs with and without weight decay.

    python -m anti_grokking.plot --preset cpu --data_dir DIR      # the flags of the training runs
    python -m anti_grokking.plot --run_group runs/anti_grokking    # every run group under a folder

Writes <out_dir>/anti_grokking/figures/<preset>.png and onsets.{md,csv} (common.analysis with EVENTS) next
to the run groups. Panels, on one log step axis: accuracies, HTSR alpha per layer (the line at alpha = 2 is
Prakash & Martin's threshold), the relative flatness of the last layer, NCC and NC1 of the penultimate
features, and the parameter norm. Solid: with weight decay, dashed: without; mean over seeds, min-max band.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from anti_grokking import train  # noqa: E402
from common import UsageError, entry_point, load_runs, seed_band  # noqa: E402
from common.analysis import Event, onset_table, write_tables  # noqa: E402
from common.plumbing.tables import run_groups  # noqa: E402

# The three phases and which signal moves first (common.analysis: running median of 3 evaluations).
EVENTS = [
    Event("train_acc >= 99%", "train_acc", "above", 0.99),
    Event("val_acc peak", "val_acc", "max"),
    Event("val_acc < 90% of its peak, after it", "val_acc", "below", 0.9, relative="peak", after="val_acc peak"),
    Event("alpha (mean) lowest", "alpha_mean", "min"),
    *(Event(f"alpha layer {i + 1} < 2", f"alpha_{2 * i}", "below", 2.0) for i in range(3)),
    Event("RF bound peak", "train_rf_bound", "max"),
    Event("RF bound lowest", "train_rf_bound", "min"),
    Event("NCC lowest", "train_ncc", "min"),
    Event("NC1 peak", "train_nc1", "max"),
    Event("NC1 lowest", "train_nc1", "min"),
    Event("parameter norm lowest", "param_norm", "min"),
]
PANELS = [  # title, [(key, label)], y scale
    ("accuracy", [("train_acc", "train"), ("val_acc", "validation")], "linear"),
    ("HTSR alpha", [("alpha_0", "layer 1"), ("alpha_2", "layer 2"), ("alpha_4", "layer 3"), ("alpha_mean", "mean")], "log"),
    ("relative flatness of the last layer (Lemma A.2 bound)", [("train_rf_bound", "train")], "log"),
    ("neural collapse (penultimate features, train)", [("train_ncc", "NCC"), ("train_nc1", "NC1")], "log"),
    ("parameter norm", [("param_norm", "||theta||_2"), ("w_norm", "||W_last||_F")], "log"),
    ("loss", [("train_loss", "train"), ("val_loss", "validation")], "log"),
]
COLORS = ["tab:blue", "tab:red", "tab:green", "tab:purple"]
DATA_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST, a stand-in for Prakash & Martin's MNIST"}


def figure(groups, title):
    """groups: [(label, frame, line style)]. Returns the Figure."""
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    for ax, (panel, keys, yscale) in zip(axes.flat, PANELS):
        for label, frame, style in groups:
            for (key, name), color in zip(keys, COLORS):
                if key in frame:
                    seed_band(ax, frame[frame.step > 0], key, f"{name}, {label}", color, linestyle=style)
        if panel == "HTSR alpha":
            ax.axhline(2, color="black", linewidth=0.8, linestyle=":")
        ax.set(xscale="log", yscale=yscale, title=panel, xlabel="optimization step")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _from_runs(frame, root):
    """The figure of every run group under a folder (`python -m common.plot`): solid with weight decay."""
    groups = [(f"weight decay {rows['weight_decay'].iloc[0]:g}", rows, "-" if rows["weight_decay"].iloc[0] > 0 else "--")
              for _, rows in run_groups(frame)]
    return figure(groups, f"Anti-grokking setting from {root}: solid with weight decay, dashed without")


# python -m common.plot RUNS --figure NAME: the figures of these runs, from (the runs' rows, RUNS)
FIGURES = {"anti_grokking": _from_runs}


@entry_point
def main(argv=None):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--run_group", default=None, help="a folder holding the run groups (default: from the flags)")
    args, rest = parser.parse_known_args(argv)
    rest = [a for a in rest if a != "--no_progress"]
    if args.run_group is None:
        runs = {wd: train.parse_args(rest + ["--weight_decay", wd]) for wd in ("0.01", "0")}
        root, preset = runs["0.01"].run_dir.parent.parent, runs["0.01"].config["preset"]
        folders = {wd: run.run_dir.parent for wd, run in runs.items()}
    else:
        root, preset = Path(args.run_group), Path(args.run_group).name
        folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and any(p.glob("seed_*/metrics.jsonl"))}
    groups = []
    for name, folder in folders.items():
        frame = load_runs(folder)
        if frame.empty:
            raise UsageError(f"no runs under {folder}; train them first: sh anti_grokking/run_script.sh {' '.join(rest)}")
        wd = frame["weight_decay"].iloc[0]
        groups.append((f"weight decay {wd:g}", frame, "-" if wd > 0 else "--"))
    figures = root / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    seeds = sorted({s for _, frame, _ in groups for s in frame.seed.unique()})
    data = DATA_NAMES.get(groups[0][1]["dataset"].iloc[0], groups[0][1]["dataset"].iloc[0])
    fig = figure(groups, f"Anti-grokking setting ({data}, {len(seeds)} seed(s)): solid with weight decay, dashed "
                         f"without")
    fig.savefig(figures / f"{preset}.png", dpi=110)
    plt.close(fig)
    frame = load_runs(root)
    frame = frame[frame.run_dir.map(lambda p: any(Path(p).parent == f.relative_to(root) for f in folders.values()))]
    table = onset_table(frame, EVENTS)
    print(write_tables(table, root))
    print(f"Figure: {figures / f'{preset}.png'}")
    return table


if __name__ == "__main__":
    main()
