"""Figs. 18-19 (GPT-2 family) from the runs of rf_gpt2: the regularised runs against the baselines, mean over
seeds with the min-max band, and the per-run summary (the figure every rf_* experiment shares:
common.unplug.figure).

    python -m rf_gpt2.plot --preset cpu [--seeds "1 42 15213"] [--to FOLDER]   # the flags of the training runs
    python -m common.plot RUNS_DIR --figure fig18                             # any folder of its runs

Writes fig18.png and summary.md beside the runs (or to --to) and prints the table.
"""

from __future__ import annotations

from common import entry_point
from common.unplug import figure_from_runs, plot_unplug_runs
from rf_gpt2 import train

# python -m common.plot RUNS --figure NAME: the figures of these runs, from (the runs' rows, RUNS)
FIGURES = {"fig18": lambda frame, root: figure_from_runs(frame, f"Figs. 18-19 (DistilGPT-2) from {root}", losses=True)}


@entry_point
def main(argv=None):
    return plot_unplug_runs(train, argv, "Figs. 18-19, GPT-2 family", "fig18", losses=True)


if __name__ == "__main__":
    main()
