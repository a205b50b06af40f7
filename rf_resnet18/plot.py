"""Fig. 4 (ResNet-18) from the runs of rf_resnet18: the regularised runs against the baselines, mean over seeds
with the min-max band, and the per-run summary (the figure every rf_* experiment shares:
common.unplug.figure).

    python -m rf_resnet18.plot --preset cpu --data_dir DIR [--seeds "1 42 15213"] [--to FOLDER]   # the flags of the training runs
    python -m common.plot RUNS_DIR --figure fig4                             # any folder of its runs

Writes fig4.png and summary.md beside the runs (or to --to) and prints the table.
"""

from __future__ import annotations

from common import entry_point
from common.unplug import figure_from_runs, plot_unplug_runs
from rf_resnet18 import train

# python -m common.plot RUNS --figure NAME: the figures of these runs, from (the runs' rows, RUNS)
FIGURES = {"fig4": lambda frame, root: figure_from_runs(frame, f"Fig. 4 from {root}", losses=False)}


@entry_point
def main(argv=None):
    return plot_unplug_runs(train, argv, "Fig. 4, ResNet-18", "fig4", losses=False)


if __name__ == "__main__":
    main()
