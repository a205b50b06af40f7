"""The anti-grokking tables of REPRODUCTION.md and anti_grokking/README.md, from the committed logs (one seed per
setting: the runs with weight decay 0.01 and without)."""

from __future__ import annotations

import math

import pandas as pd

from anti_grokking.plot import EVENTS
from common.analysis import REFERENCE, onset_table
from common import markdown_table
from common.report import Report, check_table, number

RUNS = "anti_grokking/figures/cpu"
DECAY, NO_DECAY = f"{RUNS}/cpu", f"{RUNS}/cpu_weight_decay0.0"
LABELS = {DECAY: "weight decay 0.01", NO_DECAY: "no weight decay"}
COMMANDS = {path: "sh anti_grokking/run_script.sh --preset cpu --data_dir DIR" for path in LABELS}


def numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per seed: each onset event's step (common.analysis) and a few raw values."""
    table = onset_table(frame, EVENTS).droplevel("group")
    for seed, run in frame.groupby("seed"):
        s = run.sort_values("step").reset_index(drop=True)
        at = table.loc[seed, "train_acc >= 99%"]
        table.loc[seed, "val acc when train acc reaches 99%"] = float(s.val_acc[s.step == at].iloc[0]) if math.isfinite(at) else math.nan
        table.loc[seed, "val acc: highest"] = float(s.val_acc.max())
        table.loc[seed, "val acc: last"] = float(s.val_acc.iloc[-1])
        table.loc[seed, "train acc: last"] = float(s.train_acc.iloc[-1])
        table.loc[seed, "steps"] = float(s.step.iloc[-1])
        table.loc[seed, "train_s"] = float(s.train_s.sum()) if "train_s" in s else math.nan
    return table


def numbers_of(report: Report, path: str) -> pd.Series:
    return report.numbers(path, _numbers).iloc[0]  # one seed per setting


def _numbers(group) -> pd.DataFrame:
    return numbers(group.frame)


def _step(value: float) -> str:
    return number(value) if math.isfinite(value) else "never"


def checks(report: Report) -> str:
    """REPRODUCTION.md's rows: Prakash & Martin's phases against our two single-seed runs."""
    d, n = numbers_of(report, DECAY), numbers_of(report, NO_DECAY)
    both = lambda key, f=_step: f"{f(d[key])} / {f(n[key])}"  # noqa: E731
    acc = lambda v: f"{v:.3f}"  # noqa: E731
    rows = [
        ("pre-grokking: train accuracy 100%, test low", "pre_grokking",
         f"train 99% at {both('train_acc >= 99%')} steps, validation then {both('val acc when train acc reaches 99%', acc)}"),
        ("grokking: test accuracy rises late", "grokking",
         f"half-way at {both(REFERENCE.name)} steps; highest {both('val acc: highest', acc)}"),
        ("anti-grokking: test accuracy collapses, train stays 100%", "collapse",
         f"a decline only: {both('val acc: last', acc)} at {number(d['steps'])} steps; below 90% of its peak from "
         f"{both('val_acc < 90% of its peak, after it')} steps; train {both('train acc: last', acc)}"),
        ("alpha < 2 heralds the collapse", "alpha",
         f"layer 1 below 2 from {both('alpha layer 1 < 2')} steps, layer 2 from {both('alpha layer 2 < 2')}; "
         f"the mean lowest at {both('alpha (mean) lowest')}"),
    ]
    return check_table(report, "anti_grokking", ["ours: weight decay 0.01 / none, Fashion-MNIST, 1e6 steps, seed 0"],
                       rows, [(LABELS[p], p) for p in LABELS], COMMANDS)


def onsets(report: Report) -> str:
    """The README's onset table: each event's step in each run, and its lag against the val_acc rise."""
    columns = ["event", *LABELS.values()]
    tables = {p: numbers_of(report, p) for p in LABELS}
    rows = []
    for event in [REFERENCE, *EVENTS]:
        cells = []
        for t in tables.values():
            step, lag = t[event.name], t[event.name] - t[REFERENCE.name]
            cells.append("never" if not math.isfinite(step) else f"{number(step)} ({lag:+,.0f})")
        rows.append([event.name, *cells])
    notes = "\n".join(f"{report.source(label, report.group(p), COMMANDS)}  " for p, label in LABELS.items()).rstrip()
    return markdown_table(columns, rows) + "\n" + notes + "\n"


FIGURES = [["anti_grokking.plot", "--run_group", "anti_grokking/figures/cpu"]]  # cpu.png, onsets.md
TABLES = {"checks": checks, "onsets": onsets}
