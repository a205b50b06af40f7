"""The Fig. 4 (ResNet-18) tables of REPRODUCTION.md and rf_resnet18/README.md, from the committed CPU-preset logs.

`python -m common.report` calls the functions of TABLES for the markers that name them
(`<!-- report rf_resnet18.checks -->`). The runs are ResNet-18 on a Fashion-MNIST subset (a stand-in for
CIFAR-10, not CIFAR-10).
"""

from __future__ import annotations

from common.report import Report, check_table, fixed, number, per_seed, runs_table, search_runs_table, verdict
from common.unplug import unplug_numbers

RUNS = "rf_resnet18/figures/cpu/runs/rf_resnet18"
REGULARISED = f"{RUNS}/cpu"
BASELINE = f"{RUNS}/cpu_baseline_same_scheduleTrue_regularizernone"
ORIGINAL = f"{RUNS}/cpu_regularizernone"
SEARCH = f"{RUNS}/cpu_lam0.01"
DATA = "--data_dir DIR"  # DIR: the Fashion-MNIST idx files (apt-get install dataset-fashion-mnist)
COMMANDS = {**{path: f"ORIGINAL_BASELINE=1 sh rf_resnet18/run_script.sh --preset cpu {DATA} --threads 1"
               for path in (REGULARISED, BASELINE, ORIGINAL)},
            SEARCH: f"python -m rf_resnet18.train --preset cpu {DATA} --threads 1 --seed 42 --lam 0.01"}
SOURCES = [("Regularised runs", REGULARISED), ("Fair baselines", BASELINE), ("The original's baselines", ORIGINAL)]


def numbers_of(report: Report, path: str):
    """`unplug_numbers` of a committed group."""
    return report.numbers(path, _unplug_numbers)


def _unplug_numbers(group):
    return unplug_numbers(group.frame)


def checks(report: Report) -> str:
    """Fig. 4 (ResNet-18): the paper's claims beside the CPU preset's numbers. A claim holds ('yes') when the
    numbers below say so by the rule its row states."""
    r, b, o = (numbers_of(report, path) for path in (REGULARISED, BASELINE, ORIGINAL))
    u = int(r["unplug"].iloc[0])
    saturation = r["saturation"].iloc[0]
    high = r["RF bound at unplug"] > 10 * b["RF bound at unplug"]
    drops = r["RF bound: highest in the 5 epochs after unplug"] < r["RF bound at unplug"]
    held = r["val acc at unplug"] < b["val acc at unplug"] - 0.1
    jumps = r["val acc 10 epochs after unplug"] > r["val acc at unplug"] + 0.1
    below = r["final val acc"] < b["final val acc"]
    rows = [
        (f"the capped, normalised term saturates at cap²·(1 − 1/K): {number(saturation)} (ResNet, cap 50, K = 10)",
         "saturation",
         f"{per_seed(r['term at unplug'].round())} at epoch {u} (the term's own value); 99% of {number(saturation)} or more "
         f"from epoch {per_seed(r['term at 99% of saturation from epoch'], missing='never')}; the closed form and "
         f"gradient ascent under the cap reach it (tests/unplug/test_regularisation.py)"),
        ("the same for ViT-Tiny (cap 150, K = 100) and TinyBERT / DistilGPT-2 (cap 30, K = 5)", "saturation_others",
         f"{number(150 ** 2 * (1 - 1 / 100))} and {number(30 ** 2 * (1 - 1 / 5))} by the closed form and gradient "
         f"ascent under the cap (tests/unplug/test_regularisation.py)"),
        ("RF very high under the regulariser (Fig. 4b)", "rf_high",
         f"{verdict(high)} (10x the baseline's "
         f"or more): {per_seed(r['RF bound at unplug'])} at epoch {u} against the fair baseline's "
         f"{per_seed(b['RF bound at unplug'])}"),
        ("RF drops sharply after unplug (Fig. 4b)", "rf_drops",
         f"{verdict(drops, no='**no**')}, with one definition (a drop: below its epoch-{u} value throughout epochs "
         f"{u + 1}-{u + 5}): it reaches {per_seed(r['RF bound: highest in the 5 epochs after unplug'])} there and ends at "
         f"{per_seed(r['final RF bound'])} against the fair baseline's {per_seed(b['final RF bound'])}; the "
         f"original plots the term until unplug and the bound after it, a switch that by itself multiplies the "
         f"plotted value by {per_seed(r['RF bound at unplug'] / r['term at unplug'], 2)} at epoch {u}"),
        ("validation accuracy held down while the term is on (Fig. 4a)", "val_held",
         f"{verdict(held)} (0.1 or more below the fair baseline's), and training accuracy with it: "
         f"{fixed(r['val acc at unplug'])} validation, {fixed(r['train acc at unplug'])} train at epoch {u}, "
         f"against the fair baseline's {fixed(b['val acc at unplug'])} validation; {fixed(r['val acc at epoch 5'])} "
         f"validation at epoch 5"),
        ("validation accuracy jumps after unplug (Fig. 4a)", "val_jumps",
         f"{verdict(jumps)} (0.1 or more within 10 epochs): {fixed(r['val acc 10 epochs after unplug'])} "
         f"at epoch {u + 10}; best {fixed(r['best val acc after unplug'])} (epochs "
         f"{per_seed(r['best val acc after unplug: epoch'])})"),
        ("it plateaus below the baseline, train accuracy ~100%", "plateau",
         f"{verdict(below)}: {fixed(r['final val acc'])} against the fair baseline's "
         f"{fixed(b['final val acc'])} (the original's baseline, no schedule change: {fixed(o['final val acc'])}); "
         f"train accuracy {fixed(r['final train acc'], 2)}"),
    ]
    return check_table(report, "rf_resnet18", ["ours: ResNet-18 on the Fashion-MNIST subset, seeds 1 / 42 / 15213"],
                       rows, SOURCES, COMMANDS)


def runs(report: Report) -> str:
    """The per-run table of the CPU preset (`summary.md` of the plot step), from the committed logs."""
    return runs_table(report, SOURCES, COMMANDS)


def search(report: Report) -> str:
    """The λ search (seed 42): the released λ = 1e-2 against the preset's λ = 0.1 and the fair baseline."""
    return search_runs_table(report, [("λ = 0.01 (the released value)", SEARCH), ("λ = 0.1 (the preset)", REGULARISED),
                                      ("fair baseline", BASELINE)], COMMANDS)


FIGURES = [["rf_resnet18.plot", "--preset", "cpu", "--out_dir", "rf_resnet18/figures/cpu/runs",
            "--to", "rf_resnet18/figures/cpu"]]  # fig4.png, summary.md
TABLES = {"checks": checks, "runs": runs, "search": search}
