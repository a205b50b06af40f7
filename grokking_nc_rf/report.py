"""The grokking tables of REPRODUCTION.md and grokking_nc_rf/README.md, from the committed run logs.

`python -m common.report` calls the functions of TABLES for the markers that name them
(`<!-- report grokking_nc_rf.checks -->`); `numbers` gives one row of onsets and check numbers per seed, which
`python -m common.report --compare runs/grokking_nc_rf/cpu` sets beside ours.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd

from common.analysis import REFERENCE, onset_table, summary, SUMMARY_COLUMNS
from common import markdown_table
from common.plumbing.config import REPO_ROOT
from common.report import Report, number, per_seed, span, steps, value_range
from grokking_nc_rf.plot import CHECKS, EVENTS, KDE_READINGS

CPU, PAPER = "grokking_nc_rf/figures/cpu", "grokking_nc_rf/figures/paper"
# The same three seeds of the CPU preset in other settings (README, "Reproducibility"): what moves the rows.
SETTINGS = {
    CPU: "portable kernels (AVX2), 1 thread",
    "grokking_nc_rf/figures/cpu_2threads": "portable kernels, 2 threads (torch's default on the 2-core CPU)",
    "grokking_nc_rf/figures/cpu_kernels_native": "each library's own kernels (here AVX-512), 1 thread",
    "grokking_nc_rf/figures/cpu_kernels_compatible": "torch's generic kernels, MKL's compatible path, 1 thread",
}
SPREAD_OTHERS = [path for path in SETTINGS if path != CPU]
COMMANDS = {
    CPU: "sh grokking_nc_rf/run_script.sh --preset cpu --save_features 40",
    PAPER: "sh grokking_nc_rf/run_script.sh --preset paper",
    "grokking_nc_rf/figures/cpu_2threads": "PARALLEL=0 sh grokking_nc_rf/run_script.sh --preset cpu",
    "grokking_nc_rf/figures/cpu_kernels_native": "KERNELS=native sh grokking_nc_rf/run_script.sh --preset cpu",
    "grokking_nc_rf/figures/cpu_kernels_compatible": "KERNELS=native ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE "
                                                     "sh grokking_nc_rf/run_script.sh --preset cpu",
}
# Grokfast (issue 28): plain and Grokfast-EMA runs of the same seeds, per preset, each bounded in steps.
GROKFAST = {"cpu": ("grokking_nc_rf/figures/grokfast/cpu/cpu_steps12000",
                    "grokking_nc_rf/figures/grokfast/cpu/cpu_grokfast_lamb2.0_steps12000"),
            "paper": ("grokking_nc_rf/figures/grokfast/paper/paper_steps25000",
                      "grokking_nc_rf/figures/grokfast/paper/paper_grokfast_lamb2.0_steps25000")}
COMMANDS.update({
    GROKFAST["cpu"][0]: "sh grokking_nc_rf/run_script.sh --preset cpu --steps 12000 --save_features 40",
    GROKFAST["cpu"][1]: "sh grokking_nc_rf/run_script.sh --preset cpu --steps 12000 --grokfast_lamb 2 --save_features 40",
    GROKFAST["paper"][0]: "sh grokking_nc_rf/run_script.sh --preset paper --steps 25000 --save_features 40",
    GROKFAST["paper"][1]: "sh grokking_nc_rf/run_script.sh --preset paper --steps 25000 --grokfast_lamb 2 --save_features 40",
})


def _after_first(s: pd.DataFrame, key: str, at: float) -> pd.DataFrame:
    done = s.step[s[key] >= at]
    return s[s.step > done.iloc[0]] if len(done) else s.iloc[0:0]


def _at(s: pd.DataFrame, step: float, key: str) -> float:
    return float(s.loc[s.step == step, key].iloc[0]) if math.isfinite(step) else math.nan


def _late_peak(s: pd.DataFrame, key: str) -> pd.Series:
    late = s[s.step > 100]
    return late.iloc[int(np.argmax(late[key].to_numpy()))]


# Per-seed numbers the check table quotes beyond plot.CHECKS and the onset events (raw evaluations, step order).
EXTRA = {
    "evaluations": lambda s: len(s),
    "steps": lambda s: s.step.iloc[-1],
    "train acc at the RF peak": lambda s: s.train_acc[s.train_rf_original_running.idxmax()],
    "RF below 30: first step": lambda s: s.step[s.train_rf_original_running < 30].min(),
    "RF below 30: last step": lambda s: s.step[s.train_rf_original_running < 30].max(),
    "loss spikes (train acc < 95% after 99%)": lambda s: int((_after_first(s, "train_acc", 0.99).train_acc < 0.95).sum()),
    "first loss spike: step": lambda s: _after_first(s, "train_acc", 0.99).query("train_acc < 0.95").step.min(),
    "val acc: last value": lambda s: s.val_acc.iloc[-1],
    "representativeness after step 100: highest, step": lambda s: _late_peak(s, "representativeness").step,
    "representativeness after step 100: highest": lambda s: _late_peak(s, "representativeness").representativeness,
    "representativeness after step 100: val acc at its highest": lambda s: _late_peak(s, "representativeness").val_acc,
    "NC1 (Papyan) at the end / initial": lambda s: s.train_nc1.iloc[-1] / s.train_nc1.iloc[0],
}


def numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per seed: the step of each onset event (common.analysis, running median of 3) and every check
    number (plot.CHECKS and EXTRA, raw evaluations)."""
    onsets = onset_table(frame, EVENTS).droplevel("group")
    rows = {}
    for seed, runs in frame.groupby("seed"):
        s = runs.sort_values("step").reset_index(drop=True)
        rows[seed] = {name: float(fn(s)) for name, fn in {**CHECKS, **EXTRA}.items() if _has(s, fn)}
        rows[seed]["val acc at NCC < 10%"] = _at(s, onsets.loc[seed, "NCC < 10% of initial"], "val_acc")
    return onsets.join(pd.DataFrame(rows).T).sort_index()


def _has(s, fn) -> bool:
    try:
        fn(s)
    except (KeyError, AttributeError, ValueError, IndexError):
        return False
    return True


def _numbers_of(report: Report, path: str) -> pd.DataFrame:
    return report.numbers(path, _group_numbers)


def _group_numbers(group) -> pd.DataFrame:
    """`numbers` of a committed group, with each seed's wall time from its finished.json."""
    table = numbers(group.frame)
    for seed in table.index:
        finished = group.root / group.path / f"seed_{seed}" / "finished.json"
        if finished.exists():
            times = json.loads(finished.read_text())
            table.loc[seed, "train_s"], table.loc[seed, "eval_s"] = times["train_s"], times["eval_s"]
    return table


def pct(values) -> list[float]:
    return [100 * v for v in values]


def _range_pct(values) -> str:
    return f"{value_range(pct(values), 3)}%"


# The check rows of REPRODUCTION.md: (what is checked, its key in docs/paper_numbers.json, our cell from one
# group's per-seed numbers n). Each cell holds the seeds' mean (range) or mean ± std, or a range.
ROWS = [
    ("evaluations logged per run", "logged_points",
     lambda n: f"{value_range(n['evaluations'])} rows over {value_range(n['steps'])} steps"),
    ("NCC (train, `=` position) at initialisation", "ncc_init", lambda n: span(n["NCC (train, running) at step 0"])),
    ("NCC falls to ~0 during memorisation, before validation accuracy rises", "ncc_fall",
     lambda n: f"below 10% of its initial value at {steps(n['NCC < 10% of initial'])} steps, validation accuracy "
               f"{_range_pct(n['val acc at NCC < 10%'])}"),
    ("train accuracy reaches 100%", "train_acc_100", lambda n: f"99% at {steps(n['train_acc >= 99%'])} steps"),
    ("validation accuracy reaches ~100%", "val_acc_100",
     lambda n: f"90% at {steps(n['val_acc >= 90%'])}, 99% at {steps(n['val_acc >= 99%'])} steps"),
    ("flatness (`sharpness2`, in-training epoch mean) at initialisation", "rf_init",
     lambda n: span(n["RF (original's sharpness2, running) at step 0"])),
    ("mean Tr H of the original (`hessian`) at initialisation", "trace_init",
     lambda n: span(n["mean Tr H of the original (sharpness2 / ||W_U||^2) at step 0"], 4)),
    ("flatness early dip", "rf_dip",
     lambda n: f"below 30 at steps {value_range(n['RF below 30: first step'])} to {value_range(n['RF below 30: last step'])}"),
    ("flatness peak", "rf_peak",
     lambda n: f"{value_range(n['''RF (original's sharpness2, running): peak value'''])} at "
               f"{value_range(n['''RF (original's sharpness2, running): peak step'''])} steps (train accuracy "
               f"{_range_pct(n['train acc at the RF peak'])}, validation "
               f"{_range_pct(n['''RF (original's sharpness2, running): val acc at its peak'''])})"),
    ("flatness after generalisation", "rf_after",
     lambda n: f"{value_range(n['''RF (original's sharpness2, running): last value'''])} at "
               f"{value_range(n['steps'])} steps"),
    ("‖W_U‖_F: initial, peak, end", "w_norm",
     lambda n: f"{span(n['||W_U||_F at step 0'])}; {value_range(n['||W_U||_F: peak value'])} at "
               f"{value_range(n['||W_U||_F: peak step'])} steps; {value_range(n['||W_U||_F: last value'])}"),
    ("validation loss rises during memorisation, then collapses", "val_loss_rise",
     lambda n: f"largest rise {span(n['val loss during memorisation, its largest rise: from'])} -> "
               f"{value_range(n['val loss during memorisation, its largest rise: to'])} (top at "
               f"{value_range(n['val loss during memorisation, its largest rise: step of the top'])} steps), then "
               f"{value_range(n['val loss: last value'])} at the end"),
    ("loss spikes (an evaluation with train accuracy < 95% after it first reached 99%)", "loss_spikes",
     lambda n: f"{per_seed(n['loss spikes (train acc < 95% after 99%)'])} per seed, the first at "
               f"{value_range(n['first loss spike: step'])} steps"),
    ("Fig. 8: representativeness falls to ~0 as validation accuracy reaches 100%", "rep_falls",
     lambda n: f"{value_range(n['representativeness (Petzka): last value'])} at {value_range(n['steps'])} steps "
               f"(validation accuracy {_range_pct(n['val acc: last value'])})"),
    ("Fig. 8: its improvement coincides with the first rise of validation accuracy", "rep_coincides",
     lambda n: f"highest after step 100 at {value_range(n['representativeness after step 100: highest, step'])} steps "
               f"({value_range(n['representativeness after step 100: highest'])}, validation accuracy "
               f"{_range_pct(n['representativeness after step 100: val acc at its highest'])}), below 10% of its "
               f"peak at {steps(n['representativeness < 10% of peak'])} steps, against validation accuracy 90% at "
               f"{steps(n['val_acc >= 90%'])}"),
    ("Fig. 8: the KDE term of Petzka's reference code against the validation loss", "kde_term",
     lambda n: f"at most {value_range(n['''KDE term / val loss, Petzka kernel, reference code's weights (Fig. 8): largest'''], 2)} "
               f"of it: representativeness is the validation loss to within "
               f"{value_range(n['largest |representativeness (Petzka) - val loss at the answer|'], 2)}"),
]

ROWS.append(("time per run (training + evaluation; the machine in config.json)", "time",
             lambda n: f"{value_range(n['train_s'] / 60, 2)} + {value_range(n['eval_s'] / 60, 2)} min"))

# App. D read four ways (plot.KDE_READINGS): the KDE term against the validation loss, and the value at the ends.
KDE = [(key, label) for key, label, _ in KDE_READINGS]


def kde(report: Report) -> str:
    """The README's table of representativeness under the four readings of App. D, CPU preset."""
    group = report.group(CPU)
    per_run = [runs.sort_values("step").reset_index(drop=True) for _, runs in sorted(group.frame.groupby("seed"))]
    rows = []
    for key, label in KDE:
        ratio = [(s[key + "_kde"] / s.representativeness_val_loss) for s in per_run]
        rows.append([label, value_range([r.max() for r in ratio], 2), value_range([r.iloc[-1] for r in ratio], 2),
                     value_range([s[key].iloc[0] for s in per_run]), value_range([s[key].min() for s in per_run]),
                     value_range([s[key].iloc[-1] for s in per_run], 2),
                     value_range([s.representativeness_val_loss.iloc[-1] for s in per_run], 2)])
    columns = ["reading of App. D", "KDE term / val loss: largest", "at the end", "representativeness at step 0",
               "lowest", "at the end", "val loss at the end"]
    return markdown_table(columns, rows) + "\n" + report.source("Runs (range over seeds)", group, COMMANDS) + "\n"


def parting(report: Report) -> str:
    """The README's table of where each setting's rows part from the portable 1-thread ones, per seed."""
    base = report.group(CPU)
    rows = []
    for path, label in list(present(report).items())[1:]:
        other = report.group(path)
        for seed in base.seeds:
            ours, theirs = base.rows(seed), other.rows(seed)
            first = next(((a["step"], k) for a, b in zip(ours, theirs) for k in a
                          if not k.endswith("_s") and a[k] != b.get(k) and a[k] == a[k]), (math.nan, ""))
            at = next(i for i, a in enumerate(ours) if a["step"] >= 500)
            loss = abs(theirs[at]["train_loss"] / ours[at]["train_loss"] - 1)
            end = abs(theirs[-1]["val_acc"] - ours[-1]["val_acc"])
            rows.append([label, seed, f"{number(first[0])} (`{first[1]}`)", f"{100 * loss:.2g}% (step {ours[at]['step']:,})",
                         f"{100 * end:.2g} points"])
    columns = ["setting, against portable kernels at 1 thread", "seed", "first step where a logged number differs",
               "train loss differs by, near step 500", "val accuracy at the end differs by"]
    return markdown_table(columns, rows) + "\n" + "\n".join(f"{report.source(label, report.group(path), COMMANDS)}  "
                                                         for path, label in present(report).items()).rstrip() + "\n"


RELATED = [
    ("Sakamoto et al.'s claim read with Papyan et al.'s NC1 (train): it contracts before generalisation", "nc1_before",
     lambda n: f"below 10% of its initial value at {steps(n['NC1 (Papyan) < 10% of initial'])} steps, lowest at "
               f"{steps(n['NC1 (Papyan) lowest'])}, before the val_acc rise (half-way) at {steps(n[REFERENCE.name])}"),
    ("Papyan et al.'s NC1 (train) stays contracted after generalisation", "nc1_stays",
     lambda n: f"back above 10% of its initial value at {steps(n['NC1 (Papyan) > 10% of initial again'])} steps; at the end "
               f"{_range_pct(n['NC1 (Papyan) at the end / initial'])} of its initial value"),
    ("Sakamoto et al.'s own quantity: the population (validation) within-class variance contracts, and "
     "their trace-ratio NC1 with it, as the model generalises", "wcv_contracts",
     lambda n: f"the validation within-class variance is highest at {steps(n['within-class variance (val) peak'])} "
               f"steps and below half of that at {steps(n['within-class variance (val) < 50% of peak'])}; the "
               f"validation trace-ratio NC1 below 10% of its initial value at "
               f"{steps(n['NC1 trace (Sakamoto, val) < 10% of initial'])}, below 1% at "
               f"{steps(n['NC1 trace (Sakamoto, val) < 1% of initial'])}; the val_acc rise (half-way) at {steps(n[REFERENCE.name])}"),
    ("Nanda et al.: the restricted loss falls before the validation loss, while the excluded loss rises",
     "restricted_before",
     lambda n: f"validation restricted loss below half its initial value at "
               f"{steps(n['restricted loss (val) < 50% of initial'])} steps, training excluded loss highest (after train accuracy 99%) at "
               f"{steps(n['excluded loss (train) peak after train_acc 99%'])}; the val_acc rise (half-way) at {steps(n[REFERENCE.name])}"),
    ("HTSR alpha < 2 heralds a collapse of validation accuracy (Prakash & Martin)", "alpha_heralds",
     lambda n: (f"mean alpha below 2 at {steps(n['HTSR alpha (mean) < 2'])} steps, W_U's at "
                f"{steps(n['HTSR alpha (W_U) < 2'])}; validation accuracy at the end {_range_pct(n['val acc: last value'])}"
                if "HTSR alpha (mean) < 2" in n else "not logged (the run predates alpha logging)")),
]


def _check_table(report: Report, rows, more=()) -> str:
    groups = [("ours, CPU scale", CPU), (f"ours, paper scale ({_seeds(report.group(PAPER).seeds)})", PAPER), *more]
    numbers_of = {path: _numbers_of(report, path) for _, path in groups}
    columns = ["check", "paper / original run", *(f"{label} [{i + 1}]" for i, (label, _) in enumerate(groups))]
    lines = [[text, report.paper("grokking_nc_rf", key), *(_cell(cell, numbers_of[path]) for _, path in groups)]
             for text, key, cell in rows]
    sources = [report.source(f"[{i + 1}]", report.group(path), COMMANDS) for i, (_, path) in enumerate(groups)]
    return markdown_table(columns, lines) + "\n" + "\n".join(f"{s}  " for s in sources).rstrip() + "\n"


def _seeds(seeds: list[int]) -> str:
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


def _cell(cell, n: pd.DataFrame) -> str:
    try:
        text = cell(n)
    except KeyError as err:
        return f"not logged ({err.args[0]})"
    return re.sub(r"\bat not reached( steps)?", "not reached", text)  # an event no seed reaches


def checks(report: Report) -> str:
    """REPRODUCTION.md's Figs. 1 and 8 table: the paper's number, ours at CPU scale and at paper scale."""
    return _check_table(report, ROWS)


def _committed(root, path: str) -> bool:
    """Whether the run group at `path` (under the repository root `root`) has a committed seed's log."""
    return any((root / path).glob("seed_*/metrics.jsonl"))


def related(report: Report) -> str:
    """REPRODUCTION.md's related-work rows on the grokking runs; with the plain 25,000-step paper-preset runs of the
    Grokfast comparison where committed (they log every related quantity; the 1e5-step runs predate some)."""
    path = GROKFAST["paper"][0]
    more = [("ours, paper scale, 25,000 steps", path)] if _committed(report.root, path) else []
    return _check_table(report, RELATED, more)


def onsets(report: Report, path: str = CPU) -> str:
    """The README's onset table of the CPU preset (or the group at `path`): each event's step over the seeds,
    and its lag."""
    group = report.group(path)
    table = onset_table(group.frame, EVENTS)
    rows = [row[1:] for row in summary(table)]
    return (markdown_table(SUMMARY_COLUMNS[1:], rows) + "\n" + report.source("Runs", group, COMMANDS) + "\n")


FALL = "RF < 10% of peak: bound at '='"


def _per_seed_steps(values) -> str:
    """Each seed's step of an event, 'not reached' where it does not happen (per_seed would write 'n/a')."""
    return " / ".join(number(v) if np.isfinite(v) else "not reached" for v in values)


def grokfast(report: Report, preset: str) -> str:
    """The onset table of plain against Grokfast-EMA runs of the same seeds: each event's step (mean ± std over the
    seeds that reach it), the per-seed shift Grokfast - plain, and the lag against the val_acc rise in each. An
    event that moves with the rise of validation accuracy keeps its lag. Below it, per seed, the validation accuracy
    of each group at its last step and its highest, and the step where relative flatness (bound at '=') falls
    below 10% of its peak against the step of validation accuracy 90%."""
    missing = [path for path in GROKFAST[preset] if not _committed(report.root, path)]
    if missing:
        return "Not run yet: " + "; ".join(f"`{COMMANDS[path]}` (to `{path}`)" for path in missing) + ".\n"
    groups = [report.group(path) for path in GROKFAST[preset]]
    tables = [onset_table(g.frame, EVENTS).droplevel("group") for g in groups]
    seeds = sorted(set(tables[0].index) & set(tables[1].index))
    plain, fast = (t.loc[seeds].astype(float) for t in tables)
    rows = []
    for name in [c for c in plain.columns if c in fast.columns]:
        shift = (fast[name] - plain[name]).to_numpy()
        lags = [(t[name] - t[REFERENCE.name]).to_numpy() for t in (plain, fast)]
        rows.append([name, steps(plain[name]), steps(fast[name]), steps(shift, "+") if np.isfinite(shift).any() else "n/a",
                     *(f"{lag[np.isfinite(lag)].mean():+,.0f}" if np.isfinite(lag).any() else "n/a" for lag in lags)])
    columns = ["event", "plain: step", "Grokfast: step", "shift (Grokfast - plain, per seed)",
               "lag vs val_acc rise: plain", "lag: Grokfast"]
    accuracy = []
    for label, g in zip(("plain", "Grokfast"), groups):
        val = g.frame.dropna(subset=["val_acc"]).sort_values("step").groupby("seed")["val_acc"]
        accuracy.append(f"{label} {per_seed(pct(val.last().loc[seeds]))}% at the end "
                        f"(highest {per_seed(pct(val.max().loc[seeds]))}%)")
    ends = sorted({int(g.frame["step"].max()) for g in groups})
    accuracy = (f"Validation accuracy, seeds {' / '.join(map(str, seeds))}: " + "; ".join(accuracy)
                + f"; last step {' and '.join(f'{e:,}' for e in ends)}.")
    fall = "; ".join(f"{label} {_per_seed_steps(t[FALL])} against {_per_seed_steps(t['val_acc >= 90%'])}"
                     for label, t in (("plain", plain), ("Grokfast", fast)))
    fall = f"Per seed, the RF bound at '=' below 10% of its peak against validation accuracy 90%: {fall} steps."
    sources = [report.source(label, g, COMMANDS) for label, g in zip(("Plain", "Grokfast"), groups)]
    return (markdown_table(columns, rows) + "\n" + accuracy + "  \n" + fall + "\n\n"
            + "\n".join(f"{s}  " for s in sources).rstrip() + "\n")


def present(report: Report) -> dict[str, str]:
    """The settings of SETTINGS whose run group is committed."""
    return {path: label for path, label in SETTINGS.items() if _committed(report.root, path)}


def spread(report: Report) -> dict[str, float]:
    """Per number: the largest difference between two settings' values of the same seed (SETTINGS)."""
    tables = [_numbers_of(report, path) for path in present(report)]
    widths = {}
    for name in tables[0].columns:
        per_seed_width = []
        for seed in tables[0].index:
            values = [float(t.loc[seed, name]) for t in tables if seed in t.index and name in t]
            finite = [v for v in values if math.isfinite(v)]
            per_seed_width.append(max(finite) - min(finite) if len(finite) == len(values) else math.nan)
        finite_widths = [w for w in per_seed_width if math.isfinite(w)]
        widths[name] = max(finite_widths) if finite_widths else math.nan
    return widths


SPREAD_EVENTS = ["train_acc >= 99%", "NCC < 10% of initial", REFERENCE.name, "val_acc >= 90%", "val_acc >= 99%",
                 "RF peak: original (Fig. 1)", "RF peak: exact at '='", "NC1 (Papyan) lowest", "representativeness < 10% of peak"]


def settings(report: Report) -> str:
    """The README's reproducibility table: each onset per setting (mean ± std over the seeds) and the spread."""
    settings_ = present(report)
    tables = {path: _numbers_of(report, path) for path in settings_}
    widths = spread(report)
    columns = ["event", *(f"{label} [{i + 1}]" for i, label in enumerate(settings_.values())),
               "largest difference, same seed"]
    rows = [[event, *(steps(t[event]) for t in tables.values()), number(widths[event])] for event in SPREAD_EVENTS]
    sources = [report.source(f"[{i + 1}]", report.group(path), COMMANDS) for i, path in enumerate(settings_)]
    return markdown_table(columns, rows) + "\n" + "\n".join(f"{s}  " for s in sources).rstrip() + "\n"


FIGURES = [["grokking_nc_rf.plot", "--run_group", "grokking_nc_rf/figures/cpu"],
           ["grokking_nc_rf.plot", "--run_group", "grokking_nc_rf/figures/paper"],  # figures/, onsets.md, checks.md
           *(["grokking_nc_rf.plot", "--compare", *paths, "--out", f"grokking_nc_rf/figures/grokfast/{preset}/figures"]
             for preset, paths in GROKFAST.items() if all(_committed(REPO_ROOT, path) for path in paths))]
TABLES = {"checks": checks, "related": related, "onsets": onsets, "onsets_paper": lambda r: onsets(r, PAPER),
          "settings": settings, "kde": kde, "parting": parting, "grokfast_cpu": lambda r: grokfast(r, "cpu"),
          "grokfast_paper": lambda r: grokfast(r, "paper")}
