"""The Figs. 16-17 tables of REPRODUCTION.md and rf_bert/README.md, from the committed CPU-recipe logs.

`python -m common.report` calls the functions of TABLES for the markers that name them
(`<!-- report rf_bert.checks -->`). The runs are all-MiniLM-L6-v2 (for TinyBERT) on the movie-snippet stand-in
for SST-5 (not SST-5).
"""

from __future__ import annotations

from common.report import Report, check_table, fixed, number, per_seed, value_range
from common.unplug import unplug_numbers

RUNS = "rf_bert/figures/cpu/runs/rf_bert"
REGULARISED, BASELINE = f"{RUNS}/cpu", f"{RUNS}/cpu_baseline_same_scheduleTrue_regularizernone"
COMMANDS = {path: 'SEEDS="1 42 15213" sh rf_bert/run_script.sh --preset cpu'
            for path in (REGULARISED, BASELINE)}


def numbers_of(report: Report, path: str):
    """`unplug_numbers` of a committed group."""
    return report.numbers(path, _unplug_numbers)


def _unplug_numbers(group):
    return unplug_numbers(group.frame)


def seeds(values, digits: int = 3) -> str:
    """Per seed, NaN (a run that never gets there) as 'never'."""
    return per_seed(values, digits, missing="never")


def checks(report: Report) -> str:
    """Figs. 16-17: the paper's numbers (TinyBERT, SST-5) beside ours (all-MiniLM-L6-v2, the stand-in)."""
    r, b = numbers_of(report, REGULARISED), numbers_of(report, BASELINE)
    u = int(r["unplug"].iloc[0])
    peak, peak_epoch = b["original's logged value: peak"], b["original's logged value: peak epoch"]
    rows = [
        ("the term pinned at its saturation value 30²·(1 − 1/5) = 720 while on", "term_pinned",
         f"99% of {number(r['saturation'].iloc[0])} or more from epoch {seeds(r['term at 99% of saturation from epoch'])} "
         f"to unplug (epoch {u}); tests/unplug/test_text.py checks the value on tiny models"),
        ("training loss under the term", "loss_under_term", f"{seeds(r['train loss at unplug'], 4)} at epoch {u}"),
        ("validation accuracy under the term", "val_under_term",
         f"{fixed(r['val acc at unplug'])} at epoch {u} (between {r['val acc while saturated: lowest'].min():.3f} and "
         f"{r['val acc while saturated: highest'].max():.3f} while the term is saturated), against the fair "
         f"baseline's {fixed(b['val acc at unplug'])}"),
        ("training accuracy at unplug and after", "train_at_unplug",
         f"{fixed(r['train acc at unplug'])} at epoch {u}, {fixed(r['train acc 2 epochs after unplug'], 2)} two epochs "
         f"later (the lr bump); 0.99 or more again at epoch {seeds(r['train acc >= 0.99 again after unplug: epoch'])}"),
        ("validation accuracy at the end", "val_end",
         f"{fixed(r['final val acc'])} (best after unplug {fixed(r['best val acc after unplug'])}), against the fair "
         f"baseline's {fixed(b['final val acc'])}"),
        ("the baseline's relative flatness, peak", "baseline_rf_peak",
         f"**far lower**: the original's logged value peaks at {seeds(peak, 3)} "
         f"(epochs {seeds(peak_epoch)}); it is at most 0.8‖W‖_F², and the "
         f"baselines' ‖W‖_F stays at or below {value_range(b['largest ||W||_F'])}"),
    ]
    return check_table(report, "rf_bert", ["ours: all-MiniLM-L6-v2 on the stand-in, seeds 1 / 42 / 15213"], rows,
                       [("Regularised runs", REGULARISED), ("Fair baselines", BASELINE)], COMMANDS)


FIGURES = [["rf_bert.plot", "--preset", "cpu", "--out_dir", "rf_bert/figures/cpu/runs", "--to",
            "rf_bert/figures/cpu"]]  # fig16.png, summary.md
TABLES = {"checks": checks}
