"""The Fig. 4 (ViT) tables of REPRODUCTION.md and rf_vit/README.md, from the committed CPU-preset logs.

`python -m common.report` calls the functions of TABLES for the markers that name them
(`<!-- report rf_vit.checks -->`). The runs are a small ViT on a Fashion-MNIST subset (not ImageNet-100).
"""

from __future__ import annotations

from common.report import Report, check_table, fixed, per_seed, runs_table, search_runs_table, value_range, verdict
from common.unplug import unplug_numbers

RUNS = "rf_vit/figures/cpu/runs/rf_vit"
REGULARISED = f"{RUNS}/cpu"
BASELINE = f"{RUNS}/cpu_baseline_same_scheduleTrue_regularizernone"
DATA = "--data_dir DIR"  # DIR: the Fashion-MNIST idx files (apt-get install dataset-fashion-mnist)
SEARCH = {f"{RUNS}/cpu_lam0.01": "--lam 0.01", f"{RUNS}/cpu_lam0.05": "--lam 0.05", f"{RUNS}/cpu_lam0.1": "--lam 0.1",
          f"{RUNS}/cpu_lam0.1_max_norm10.0": "--lam 0.1 --max_norm 10"}
COMMANDS = {**{path: f"sh rf_vit/run_script.sh --preset cpu {DATA} --threads 1" for path in (REGULARISED, BASELINE)},
            **{path: f"python -m rf_vit.train --preset cpu {DATA} --threads 1 --seed 42 {flags}"
               for path, flags in SEARCH.items()}}
SOURCES = [("Regularised runs", REGULARISED), ("Fair baselines", BASELINE)]
WHILE_ON = 20  # from this epoch to two before unplug: "while the term is on" (the term saturates by then)


def numbers_of(report: Report, path: str):
    """`unplug_numbers` of a committed group, with the validation accuracy while the term is on (epochs WHILE_ON
    to unplug - 2) and the highest validation accuracy until unplug."""
    return report.numbers(path, _numbers)


def _numbers(group):
    numbers = unplug_numbers(group.frame)
    for seed, run in group.frame.groupby("seed"):
        u = int(run.unplug_epoch.iloc[0])
        on = run[(run.epoch >= WHILE_ON) & (run.epoch <= u - 2)].val_acc
        numbers.loc[seed, "val acc while on: lowest"] = float(on.min())
        numbers.loc[seed, "val acc while on: highest"] = float(on.max())
        numbers.loc[seed, "val acc while on: mean"] = float(on.mean())
        numbers.loc[seed, "val acc until unplug: highest"] = float(run[run.epoch <= u].val_acc.max())
        numbers.loc[seed, "val acc 5 epochs after unplug"] = float(run[run.epoch == u + 5].val_acc.iloc[0])
    return numbers


def checks(report: Report) -> str:
    """Fig. 4 on the ViT: the paper's claims beside the CPU preset's numbers. A claim holds ('yes') when the
    numbers say so by the rule its row states."""
    r, b = numbers_of(report, REGULARISED), numbers_of(report, BASELINE)
    u = int(r["unplug"].iloc[0])
    high = r["RF bound at unplug"] > 10 * b["RF bound at unplug"]
    held = r["val acc while on: mean"] < b["val acc while on: mean"] - 0.1
    jumps = r["best val acc after unplug"] > r["val acc until unplug: highest"] + 0.02
    below = r["final val acc"] < b["final val acc"]
    rows = [
        ("RF very high under the regulariser", "rf_high",
         f"{verdict(high)} (10x the baseline's "
         f"or more): {per_seed(r['RF bound at unplug'])} at epoch {u} against {per_seed(b['RF bound at unplug'])}"),
        ("validation accuracy held down while the term is on", "val_held",
         f"{verdict(held, no='**no**')} (held: its mean over epochs {WHILE_ON}-{u - 2} 0.1 or more below the fair "
         f"baseline's): "
         f"{value_range(r['val acc while on: lowest'].tolist() + r['val acc while on: highest'].tolist())} at epochs "
         f"{WHILE_ON}-{u - 2}, the baseline's {value_range(b['val acc while on: lowest'].tolist() + b['val acc while on: highest'].tolist())}; "
         f"then {fixed(r['val acc at unplug'], 2)} at epoch {u} and {fixed(r['val acc 5 epochs after unplug'], 2)} at "
         f"epoch {u + 5} (the lr bump)"),
        ("validation accuracy jumps after unplug", "val_jumps",
         f"{verdict(jumps)} (a jump: the best after unplug 0.02 or more above the best before): best after "
         f"{fixed(r['best val acc after unplug'])}, best until unplug {fixed(r['val acc until unplug: highest'])}"),
        ("it plateaus below the baseline", "plateau",
         f"{verdict(below)}: {fixed(r['final val acc'])} against {fixed(b['final val acc'])}"),
    ]
    return check_table(report, "rf_vit", ["ours: a 4-block ViT on the Fashion-MNIST subset, seeds 1 / 42 / 15213"],
                       rows, SOURCES, COMMANDS)


def runs(report: Report) -> str:
    """The per-run table of the CPU preset (`summary.md` of the plot step), from the committed logs."""
    return runs_table(report, SOURCES, COMMANDS)


def search(report: Report) -> str:
    """The λ search (seed 42) that led to the preset's λ = 0.03."""
    return search_runs_table(report, [
        ("fair baseline", BASELINE), ("λ = 0.01", f"{RUNS}/cpu_lam0.01"), ("λ = 0.03 (the preset)", REGULARISED),
        ("λ = 0.05", f"{RUNS}/cpu_lam0.05"), ("λ = 0.1", f"{RUNS}/cpu_lam0.1"),
        ("λ = 0.1, cap 10 (`--max_norm 10`, saturation 90)", f"{RUNS}/cpu_lam0.1_max_norm10.0")], COMMANDS)


FIGURES = [["rf_vit.plot", "--preset", "cpu", "--out_dir", "rf_vit/figures/cpu/runs",
            "--to", "rf_vit/figures/cpu"]]  # fig4.png, summary.md
TABLES = {"checks": checks, "runs": runs, "search": search}
