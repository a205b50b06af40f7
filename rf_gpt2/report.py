"""The Figs. 18-19 tables of REPRODUCTION.md and rf_gpt2/README.md, from the committed CPU-recipe logs.

The runs are a small GPT-2 trained from scratch, not pretrained (for DistilGPT-2), on the movie-snippet
stand-in for SST-5 (not SST-5), with lambda 0.3 (10x the paper's; README).
"""

from __future__ import annotations

from common.report import Report, check_table, fixed, number
from rf_bert.report import numbers_of, seeds

RUNS = "rf_gpt2/figures/cpu/runs/rf_gpt2"
REGULARISED, BASELINE = f"{RUNS}/cpu", f"{RUNS}/cpu_baseline_same_scheduleTrue_regularizernone"
PEAK = "original's logged value: peak"
COMMANDS = {path: 'SEEDS="1 42 15213" sh rf_gpt2/run_script.sh --preset cpu'
            for path in (REGULARISED, BASELINE)}


def checks(report: Report) -> str:
    """Figs. 18-19: the paper's numbers (DistilGPT-2, SST-5) beside ours (a from-scratch GPT-2, the stand-in)."""
    r, b = numbers_of(report, REGULARISED), numbers_of(report, BASELINE)
    u = int(r["unplug"].iloc[0])
    best = max(float(r["best val acc after unplug"].max()), float(b["best val acc after unplug"].max()))
    rows = [
        ("the term pinned at its saturation value 720 while on", "term_pinned",
         f"99% of {number(r['saturation'].iloc[0])} or more from epoch {seeds(r['term at 99% of saturation from epoch'])} "
         f"to unplug (epoch {u})"),
        ("training loss under the term", "loss_under_term",
         f"{seeds(r['train loss at unplug'], 4)} at epoch {u} (λ 0.3: log 5 − 0.3·720)"),
        ("validation accuracy under the term and at the end", "val",
         f"{fixed(r['val acc at unplug'])} at epoch {u} (baseline {fixed(b['val acc at unplug'])}), "
         f"{fixed(r['final val acc'])} at the end (baseline {fixed(b['final val acc'])}): **no generalisation to "
         f"compare**, no run above {best:.3f} after unplug"),
        ("training accuracy under the term and at the end", "train",
         f"{fixed(r['train acc at unplug'])} at epoch {u} (baseline {fixed(b['train acc at unplug'])}), "
         f"{fixed(r['final train acc'])} at the end (baseline {fixed(b['final train acc'])})"),
        ("the baseline's relative flatness", "baseline_rf",
         f"the original's logged value peaks at {seeds(b[PEAK])}; the RF bound (fixed definition) of the baselines "
         f"stays between {number(b['RF bound: lowest'].min())} and {number(b['RF bound: highest'].max())}, against "
         f"{number(r['RF bound: highest'].max())} at most under the term"),
    ]
    return check_table(report, "rf_gpt2", ["ours: a small GPT-2 from scratch on the stand-in, λ 0.3, seeds 1 / 42 / 15213"],
                       rows, [("Regularised runs", REGULARISED), ("Fair baselines", BASELINE)], COMMANDS)


FIGURES = [["rf_gpt2.plot", "--preset", "cpu", "--out_dir", "rf_gpt2/figures/cpu/runs", "--to",
            "rf_gpt2/figures/cpu"]]  # fig18.png, summary.md
TABLES = {"checks": checks}
