#!/bin/sh
# Fig. 1 and Fig. 8: train the three seeds of a preset, then plot them and print the onset table.
#   sh grokking_nc_rf/run_script.sh --preset cpu      # minutes per seed on a CPU
#   sh grokking_nc_rf/run_script.sh --preset paper    # the original run: 1e5 steps per seed
# Extra flags pass through to train.py and plot.py (e.g. --lr 3e-4 --steps 8000 --split unordered).
# PYTHON selects the interpreter (default python3), e.g. PYTHON=.venv/bin/python.
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SEEDS=${SEEDS:-"1 42 15213"}
for seed in $SEEDS; do
    "$PYTHON" -m grokking_nc_rf.train --seed "$seed" "$@"
done
"$PYTHON" -m grokking_nc_rf.plot "$@"
