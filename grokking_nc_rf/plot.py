"""Fig. 1 and Fig. 8 from the run logs of several seeds, and the onset table.

    python -m grokking_nc_rf.plot --preset cpu          # the runs that `train --preset cpu` wrote
    python -m grokking_nc_rf.plot --run_group runs/grokking_nc_rf/cpu

Takes the same flags as train.py to find the run folder (or --run_group), writes
<run folder>/figures/{fig1_grokking,fig1_panels,fig8_representativeness,fig8_kde_terms,signals}.png and
onsets.{md,csv} (common.analysis with EVENTS: accuracies, NCC, NC1, the flatness peaks and falls, ||W_U||_F,
representativeness and HTSR alpha) and checks.md, and prints the tables. Lines are the mean over seeds,
bands the min-max range.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common import UsageError, entry_point, load_runs, markdown_table, read_metrics, seed_band  # noqa: E402
from common.analysis import REFERENCE, Event, onset_table, write_tables  # noqa: E402
from common.plot import signals_figure  # noqa: E402
from common.plumbing.tables import seeds_label  # noqa: E402
from grokking_nc_rf import train  # noqa: E402

def _at_peak(s: pd.DataFrame, key: str) -> pd.Series:
    return s.iloc[int(np.argmax(s[key].to_numpy()))]


# The onset table (common.analysis: each event read from the running median of 3 evaluations, so a
# one-evaluation loss spike is neither a peak nor a crossing). Train side: the original's in-training epoch
# values, as Fig. 1 plots them. Beside them the related work's signals, each as its authors compute it: Papyan et
# al.'s NC1; Sakamoto et al.'s within-class variance and trace-ratio NC1 on held-out data; Nanda et al.'s restricted
# and excluded losses; HTSR alpha (Prakash & Martin).
EVENTS = [
    Event("train_acc >= 99%", "train_acc_running", "above", 0.99),
    Event("val_acc >= 90%", "val_acc", "above", 0.90),
    Event("val_acc >= 99%", "val_acc", "above", 0.99),
    Event("NCC < 10% of initial", "train_ncc_running", "below", 0.1, relative="initial"),
    Event("NC1 (Papyan) < 10% of initial", "train_nc1", "below", 0.1, relative="initial"),
    Event("NC1 (Papyan) lowest", "train_nc1", "min"),
    Event("NC1 (Papyan) > 10% of initial again", "train_nc1", "above", 0.1, relative="initial",
          after="NC1 (Papyan) lowest"),
    Event("within-class variance (val) peak", "val_wcv", "max"),
    Event("within-class variance (val) < 50% of peak", "val_wcv", "below", 0.5, relative="peak",
          after="within-class variance (val) peak"),
    Event("NC1 trace (Sakamoto, val) < 10% of initial", "val_nc1_trace", "below", 0.1, relative="initial"),
    Event("NC1 trace (Sakamoto, val) < 1% of initial", "val_nc1_trace", "below", 0.01, relative="initial"),
    Event("restricted loss (val) < 50% of initial", "val_restricted_loss", "below", 0.5, relative="initial"),
    # after memorisation: the warm-up's first steps raise every loss above its initial value for a moment
    Event("excluded loss (train) peak after train_acc 99%", "train_excluded_loss", "max", after="train_acc >= 99%"),
    Event("RF peak: original (Fig. 1)", "train_rf_original_running", "max"),
    Event("RF peak: original, eval", "train_rf_original", "max"),
    Event("RF peak: bound at '='", "train_rf_bound", "max"),
    Event("RF peak: exact at '='", "train_rf_exact", "max"),
    # the fall after the peak (issue 28's "flatness peak and fall"): the first evaluation below 10% of the peak
    Event("RF < 10% of peak: original (Fig. 1)", "train_rf_original_running", "below", 0.1, relative="peak",
          after="RF peak: original (Fig. 1)"),
    Event("RF < 10% of peak: bound at '='", "train_rf_bound", "below", 0.1, relative="peak", after="RF peak: bound at '='"),
    Event("||W_U||_F peak", "w_norm", "max"),
    Event("representativeness peak", "representativeness", "max"),
    Event("representativeness < 10% of peak", "representativeness", "below", 0.1, relative="peak",
          after="representativeness peak"),
    Event("HTSR alpha (mean) < 2", "alpha_mean", "below", 2.0),
    Event("HTSR alpha (W_U) < 2", "alpha_unembed", "below", 2.0),
]


KDE_READINGS = [("representativeness", "Petzka kernel, reference code's weights (Fig. 8)", "tab:orange"),
                ("representativeness_gaussian", "Gaussian kernel, Nadaraya-Watson weights", "tab:blue"),
                ("representativeness_as_given", "Petzka kernel, weight 0.02 as given", "tab:red"),
                ("representativeness_gaussian_as_given", "Gaussian kernel, weight 0.02 as given (App. D literally)",
                 "tab:purple")]


def _memorising(s: pd.DataFrame) -> pd.DataFrame:
    """The evaluations after step 100 (the fall from the initial loss) up to the first with train accuracy
    >= 99%: where the paper sees the validation loss rise before it collapses (loss spikes after
    memorisation at lr 1e-3, and in the paper preset after generalisation, stay out)."""
    done = s.step[s.train_acc >= 0.99]
    return s[(s.step > 100) & (s.step <= (done.iloc[0] if len(done) else s.step.iloc[-1]))]


def _largest_rise(s: pd.DataFrame) -> tuple[float, float, float]:
    """The largest increase of the validation loss during memorisation (a later value minus the lowest
    before it): (the low, the top, the step of the top); NaN when there is no such window."""
    m = _memorising(s).reset_index(drop=True)
    if not len(m):
        return np.nan, np.nan, np.nan
    low = m.val_loss.cummin()
    top = (m.val_loss - low).idxmax()
    return low[top], m.val_loss[top], m.step[top]


# The check numbers REPRODUCTION.md compares with the paper's Fig. 1 and the original run, per seed.
CHECKS = {
    "NCC (train, running) at step 0": lambda s: s.train_ncc_running.iloc[0],
    "RF (original's sharpness2, running) at step 0": lambda s: s.train_rf_original_running.iloc[0],
    "RF (original's sharpness2, running): peak value": lambda s: s.train_rf_original_running.max(),
    "RF (original's sharpness2, running): peak step": lambda s: _at_peak(s, "train_rf_original_running").step,
    "RF (original's sharpness2, running): val acc at its peak": lambda s: _at_peak(s, "train_rf_original_running").val_acc,
    "RF (original's sharpness2, running): last value": lambda s: s.train_rf_original_running.iloc[-1],
    "RF bound at '=': peak step": lambda s: _at_peak(s, "train_rf_bound").step,
    "RF bound at '=': val acc at its peak": lambda s: _at_peak(s, "train_rf_bound").val_acc,
    "mean Tr H of the original (sharpness2 / ||W_U||^2) at step 0": lambda s: (
        s.train_rf_original / s.w_norm**2).iloc[0],
    "||W_U||_F at step 0": lambda s: s.w_norm.iloc[0],
    "||W_U||_F: peak value": lambda s: s.w_norm.max(),
    "||W_U||_F: peak step": lambda s: _at_peak(s, "w_norm").step,
    "||W_U||_F: last value": lambda s: s.w_norm.iloc[-1],
    "val loss at step 0": lambda s: s.val_loss.iloc[0],
    "val loss during memorisation, its largest rise: from": lambda s: _largest_rise(s)[0],
    "val loss during memorisation, its largest rise: to": lambda s: _largest_rise(s)[1],
    "val loss during memorisation, its largest rise: step of the top": lambda s: _largest_rise(s)[2],
    "val loss: last value": lambda s: s.val_loss.iloc[-1],
    "representativeness (Petzka): highest value": lambda s: s.representativeness.max(),
    "representativeness (Petzka): last value": lambda s: s.representativeness.iloc[-1],
    "largest |representativeness (Petzka) - val loss at the answer|": lambda s: (
        s.representativeness - s.representativeness_val_loss).abs().max(),
    **{f"KDE term / val loss, {label}: largest": (lambda key: lambda s: (
        s[key + "_kde"] / s.representativeness_val_loss).max())(key) for key, label, _ in KDE_READINGS},
}


def check_table(frame: pd.DataFrame) -> str:
    """Markdown: one row per check number, one column per seed, and the mean."""
    per_seed = {seed: {name: float(fn(group.sort_values("step").reset_index(drop=True))) for name, fn in CHECKS.items()}
                for seed, group in frame.groupby("seed")}
    seeds = sorted(per_seed)
    rows = [[name, *(per_seed[s][name] for s in seeds), float(np.mean([per_seed[s][name] for s in seeds]))]
            for name in CHECKS]
    return markdown_table(["check", *(f"seed {s}" for s in seeds), "mean"], rows)


def _band(ax, frame, key, label, color, scale=1.0, **kw):
    """Mean over seeds with the min-max band, on the log step axis (step 0 left out)."""
    return seed_band(ax, frame[frame.step > 0], key, label, color, scale=scale, **kw)


ACCURACIES = [("train_acc_running", "train accuracy (%)", "tab:blue", 100),
              ("val_acc", "validation accuracy (%)", "tab:green", 100)]


def twin_axis_figure(frame, left, right, left_label, right_label, title):
    """Left-axis curves (key, label, color[, scale, line style dict]) against the right-axis curves
    (key, label, color, scale) on a log step axis, as the paper's Fig. 1 and Fig. 8. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(8, 5))
    lines = [_band(ax, frame, *spec[:4], **(spec[4] if len(spec) > 4 else {})) for spec in left]
    ax.axhline(0, color="gray", linewidth=0.6)
    ax.set(xscale="log", xlabel="optimization step", ylabel=left_label)
    ax2 = ax.twinx()
    lines += [_band(ax2, frame, *spec) for spec in right]
    ax2.set(ylabel=right_label, ylim=(0, 105))
    ax.legend(lines, [line.get_label() for line in lines], loc="center left", fontsize=9)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def fig1(frame, band):
    """Fig. 1 as the paper draws it: the original's sharpness2 (product-of-logits softmax, both positions'
    features) and the train-side NCC and accuracy, each the mean over the last epoch's in-training passes."""
    return twin_axis_figure(frame, [("train_rf_original_running", "relative flatness (original's sharpness2)", "tab:red")],
                            ACCURACIES + [("train_ncc_running", "NCC (train, '=' position)", "tab:purple")],
                            "relative flatness", "accuracy (%) / NCC", f"Fig. 1: grokking on a + b mod p ({band})")


def fig8(frame, band):
    """Fig. 8: representativeness (Petzka kernel, the reference code's weights) with the validation loss
    drawn over it, and the accuracies."""
    return twin_axis_figure(frame, [("representativeness", "representativeness (Petzka KDE)", "tab:orange", 1.0,
                                     {"linewidth": 4}),
                                    ("representativeness_val_loss", "validation loss at the answer (on top of it)",
                                     "black", 1.0, {"linestyle": "--", "linewidth": 1.2})],
                            ACCURACIES, "representativeness / validation loss", "accuracy (%)",
                            f"Fig. 8: representativeness and accuracies ({band})")


def panels(frame):
    """Every logged curve family in seven panels (accuracy, loss, NCC, relative flatness, representativeness,
    NC1 and ||W_U||_F, HTSR alpha where logged). Returns the Figure."""
    specs = [("accuracy", [("train_acc", "train"), ("val_acc", "validation"),
                           ("train_acc_running", "train, in-training epoch mean")], "linear"),
             ("loss", [("train_loss", "train"), ("val_loss", "validation")], "log"),
             ("NCC (Def. 3.1, mean)", [("train_ncc", "train"), ("val_ncc", "validation"),
                                       ("train_ncc_running", "train, in-training epoch mean")], "log"),
             ("relative flatness", [("train_rf_original_running", "original's variant, in-training epoch mean (Fig. 1)"),
                                    ("train_rf_original", "original's variant, end of step"),
                                    ("train_rf_bound", "bound at '=' (Lemma A.2)"),
                                    ("train_rf_exact", "exact at '=' (Def. 3.2)")], "log"),
             ("representativeness", [("representativeness", "Petzka kernel"),
                                     ("representativeness_gaussian", "Gaussian kernel (Nadaraya-Watson)"),
                                     ("representativeness_val_loss", "validation loss at the answer")], "linear"),
             ("NC1 and ||W_U||_F", [("train_nc1", "NC1"), ("w_norm", "||W_U||_F")], "log"),
             ("HTSR alpha (dotted: 2)", [("alpha_mean", "mean over the weight matrices"), ("alpha_embed", "embedding"),
                                         ("alpha_unembed", "W_U")], "log")]
    fig, axes = plt.subplots(2, 4, figsize=(20, 8))
    for ax, (title, keys, yscale) in zip(axes.flat, specs):
        for (key, label), color in zip(keys, ["tab:red", "tab:blue", "tab:green", "tab:purple"]):
            if key in frame:
                _band(ax, frame, key, label, color)
        if title.startswith("HTSR"):
            ax.axhline(2, color="black", linestyle=":", linewidth=0.8)
        ax.set(xscale="log", yscale=yscale, title=title, xlabel="optimization step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", transform=ax.transAxes)
    axes.flat[-1].axis("off")
    fig.tight_layout()
    return fig


def kde_terms(frame, band):
    """What representativeness is made of: the validation loss and, per reading of App. D, the KDE term
    subtracted from it (left), and their ratio (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(15, 5))
    _band(axes[0], frame, "representativeness_val_loss", "validation loss at the answer (first term)", "black")
    for key, label, color in KDE_READINGS:
        _band(axes[0], frame, key + "_kde", "KDE term: " + label, color)
        ratio = frame.assign(ratio=frame[key + "_kde"] / frame["representativeness_val_loss"])
        _band(axes[1], ratio, "ratio", label, color)
    axes[0].set(xscale="log", yscale="log", xlabel="optimization step", title="the two terms of representativeness")
    axes[1].set(xscale="log", yscale="log", xlabel="optimization step",
                title="KDE term / validation loss (Rep = val loss x (1 - ratio))")
    axes[1].axhline(1, color="gray", linewidth=0.6)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(f"App. D: representativeness = validation loss - KDE term ({band})")
    fig.tight_layout()
    return fig


# The plain-against-Grokfast figure (--compare): every signal of the onset table, each in its own panel.
COMPARED = [("validation accuracy", "val_acc", "linear"), ("train accuracy (in-training epoch mean)", "train_acc_running", "linear"),
            ("relative flatness (Fig. 1's curve)", "train_rf_original_running", "log"),
            ("relative flatness, bound at '='", "train_rf_bound", "log"),
            ("NCC (train, in-training epoch mean)", "train_ncc_running", "log"),
            ("NC1 (Papyan et al., train)", "train_nc1", "log"),
            ("within-class variance (Sakamoto et al., val)", "val_wcv", "log"),
            ("NC1 trace ratio (Sakamoto et al., val)", "val_nc1_trace", "log"),
            ("restricted loss (Nanda et al., val)", "val_restricted_loss", "log"),
            ("excluded loss (Nanda et al., train)", "train_excluded_loss", "linear"),
            ("restricted loss, final key frequencies (val)", "val_restricted_loss_final_keys", "log"),
            ("excluded loss, final key frequencies (train)", "train_excluded_loss_final_keys", "linear"),
            ("key frequencies (Nanda et al.)", "n_key_frequencies", "linear"),
            ("HTSR alpha, mean (Prakash & Martin)", "alpha_mean", "linear"),
            ("validation loss", "val_loss", "log")]


def _run_label(frame) -> str:
    lamb = float(frame["grokfast_lamb"].iloc[0]) if "grokfast_lamb" in frame else 0.0
    alpha = float(frame["grokfast_alpha"].iloc[0]) if lamb else 0.0
    return f"Grokfast-EMA (alpha {alpha:g}, lamb {lamb:g})" if lamb else "plain AdamW"


def with_final_keys(frame, group: Path):
    """`frame` with Nanda et al.'s reading added where a run wrote it (--save_features): the restricted and
    excluded losses with the last saved evaluation's key frequencies, as `<key>_final_keys` at the saved steps."""
    parts = []
    for run_dir, rows in frame.groupby("run_dir", sort=False):
        path = group / run_dir / "fourier_final_keys.jsonl"
        if path.exists():
            final = pd.DataFrame(read_metrics(path)).drop(columns="key_frequencies")
            rows = rows.merge(final.rename(columns=lambda k: k if k == "step" else f"{k}_final_keys"), on="step",
                              how="left")
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def compare_signals(frames: list, title: str):
    """Each signal of COMPARED in a panel, one curve per run group (mean over seeds, min-max band), and each
    group's val_acc rise (mean over seeds) as a dotted line: does the signal move when generalisation does?"""
    fig, axes = plt.subplots(3, 5, figsize=(24, 11))
    for frame, color in zip(frames, ["black", "tab:red", "tab:blue", "tab:green"]):
        rises = onset_table(frame, [])[REFERENCE.name].to_numpy(dtype=float)
        rise = rises[np.isfinite(rises)].mean() if np.isfinite(rises).any() else np.nan
        for ax, (name, key, yscale) in zip(axes.flat, COMPARED):
            if key in frame and frame[key].notna().any():
                _band(ax, frame, key, _run_label(frame), color)
            if np.isfinite(rise):
                ax.axvline(rise, color=color, linestyle=":", linewidth=1)
            ax.set(xscale="log", yscale=yscale, title=name, xlabel="optimization step")
    for ax in axes.flat:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged by these runs", ha="center", transform=ax.transAxes)
    fig.suptitle(title + "; dotted: each group's val_acc rise (half-way), mean over seeds")
    fig.tight_layout()
    return fig


# python -m common.plot RUNS --figure NAME: the figures of these runs, from (the runs' rows, RUNS)
FIGURES = {"fig1": lambda frame, root: fig1(frame, seeds_label(frame)),
           "fig1_panels": lambda frame, root: panels(frame),
           "fig8": lambda frame, root: fig8(frame, seeds_label(frame)),
           "fig8_kde_terms": lambda frame, root: kde_terms(frame, seeds_label(frame))}


@entry_point
def main(argv=None):
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--run_group", default=None, help="folder holding seed_<k>/ run folders")
    parser.add_argument("--compare", nargs="+", default=None, metavar="RUN_GROUP",
                        help="draw the signals of these run groups side by side (e.g. plain and Grokfast runs) to "
                             "<--out>/compare_signals.png instead")
    parser.add_argument("--out", default=None, help="with --compare: the folder of the figure")
    args, rest = parser.parse_known_args(argv)
    if args.compare:
        return _compare_main(args)
    if args.run_group is None:
        rest = [a for a in rest if a != "--no_progress"]
        args.run_group = train.parse_args(rest).run_dir.parent
    group = Path(args.run_group)
    frame = load_runs(group)
    if frame.empty:
        raise UsageError(f"no runs under {group}; run `python -m grokking_nc_rf.train` with the same flags first")
    n_seeds = frame["seed"].nunique()
    figures = group / "figures"
    figures.mkdir(exist_ok=True)
    band = f"mean and min-max over {n_seeds} seeds" if n_seeds > 1 else f"seed {frame['seed'].iloc[0]}"
    signals = signals_figure(frame, f"The signals of the papers on grokking on one step axis ({band})", group)
    for name, fig, dpi in (("fig1_grokking", fig1(frame, band), 130), ("fig8_representativeness", fig8(frame, band), 130),
                           ("fig8_kde_terms", kde_terms(frame, band), 110), ("fig1_panels", panels(frame), 110),
                           ("signals", signals, 110)):
        fig.savefig(figures / f"{name}.png", dpi=dpi)
        plt.close(fig)
    table = onset_table(frame, EVENTS)
    markdown = write_tables(table, group)
    checks = check_table(frame)
    (group / "checks.md").write_text(checks)
    print(f"Onset steps ({n_seeds} seeds, {group}):\n{markdown}\nCheck numbers (REPRODUCTION.md):\n{checks}\n"
          f"Figures: {figures}")
    from common.report import agreement  # a rerun of a config we committed: does it agree with ours?

    line = agreement(group)
    if line:
        print(line)
    return table


def _compare_main(args) -> Path:
    if not args.out:
        raise UsageError("--compare needs --out FOLDER, where compare_signals.png goes")
    frames = []
    for group in map(Path, args.compare):
        frame = load_runs(group)
        if frame.empty:
            raise UsageError(f"no runs under {group}; give folders that hold seed_<k>/ run folders")
        frames.append(with_final_keys(frame, group))
    seeds = sorted(set.intersection(*(set(f["seed"]) for f in frames)))
    fig = compare_signals(frames, f"Grokking's signals, {' against '.join(_run_label(f) for f in frames)} "
                                  f"(seeds {', '.join(map(str, seeds))})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "compare_signals.png", dpi=100)
    plt.close(fig)
    print(out / "compare_signals.png")
    return out / "compare_signals.png"


if __name__ == "__main__":
    main()
